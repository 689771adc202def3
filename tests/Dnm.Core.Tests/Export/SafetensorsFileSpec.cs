using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Dnm.Core.Export;
using Dnm.Core.Training;

namespace Dnm.Core.Tests.Export;

public class SafetensorsFileSpec
{
    private static readonly NamedArray[] Tensors =
    [
        new("encoder.dense1.weight", [2, 3], [1, 2, 3, 4, 5, 6]),
        new("encoder.dense1.bias", [2], [-1, 0.5f]),
        new("som.prototypes", [4, 2], [0, 1, 2, 3, 4, 5, 6, 7]),
    ];

    private static readonly Dictionary<string, string> Metadata = new() { ["format"] = "pt", ["dnm.config"] = "{\"map\": \"2x2\"}" };

    [Fact]
    public void Should_write_the_header_the_format_specifies_and_read_the_same_tensors_back()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("m.safetensors");

        SafetensorsFile.Write(path, Tensors, Metadata);

        var bytes = File.ReadAllBytes(path);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, headerLength % 8);
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, headerLength));
        var bias = header.RootElement.GetProperty("encoder.dense1.bias");
        Assert.Equal("F32", bias.GetProperty("dtype").GetString());
        Assert.Equal([2L], bias.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal([24L, 32L], bias.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("pt", header.RootElement.GetProperty("__metadata__").GetProperty("format").GetString());
        Assert.Equal(8 + headerLength + 16 * 4, bytes.Length);
        Assert.Equal(-1f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(8 + headerLength + 24)));

        var read = SafetensorsFile.Read(path);
        Assert.Equal(Tensors.Select(t => (t.Name, string.Join(",", t.Shape), string.Join(",", t.Data))),
            read.Tensors.Select(t => (t.Name, string.Join(",", t.Shape), string.Join(",", t.Data))));
        Assert.Equal(Metadata, read.Metadata);
        Assert.Equal(Metadata, SafetensorsFile.ReadMetadata(path));
    }

    [Theory]
    [InlineData("truncated", "truncated")]
    [InlineData("header-length", "header length")]
    [InlineData("f16", "F16")]
    [InlineData("gap", "without gaps")]
    [InlineData("not-json", "unreadable header")]
    public void Should_name_what_is_wrong_with_a_broken_file(string damage, string expected)
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("m.safetensors");
        SafetensorsFile.Write(path, Tensors, Metadata);
        var bytes = File.ReadAllBytes(path);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = Encoding.UTF8.GetString(bytes, 8, headerLength);
        byte[] WithHeader(string text)
        {
            var json = Encoding.UTF8.GetBytes(text);
            var result = new byte[8 + json.Length + bytes.Length - 8 - headerLength];
            BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)json.Length);
            json.CopyTo(result, 8);
            bytes.AsSpan(8 + headerLength).CopyTo(result.AsSpan(8 + json.Length));
            return result;
        }
        File.WriteAllBytes(path, damage switch
        {
            "truncated" => bytes[..^4],
            "header-length" => [.. BitConverter.GetBytes(ulong.MaxValue / 2), .. bytes[8..]],
            "f16" => WithHeader(header.Replace("\"dtype\":\"F32\",\"shape\":[2]", "\"dtype\":\"F16\",\"shape\":[2]")),
            "gap" => WithHeader(header.Replace("[24,32]", "[28,36]").Replace("[32,64]", "[36,68]")),
            _ => WithHeader("[1, 2" + header[5..]),
        });

        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_missing_file_should_be_a_checkpoint_error()
    {
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Read("/nonexistent/m.safetensors"));
        Assert.Contains("does not exist", e.Message);
    }
}
