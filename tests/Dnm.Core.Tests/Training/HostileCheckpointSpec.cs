using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

/// <summary>
/// Checkpoints whose SHA-256 is right but whose content no run writes. Each must be refused as "invalid checkpoint" before
/// any tensor is allocated: the hash proves the file is intact, not that it is honest.
/// </summary>
public class HostileCheckpointSpec : IDisposable
{
    private readonly ScratchDirectory dir = new();
    private readonly string valid;

    public HostileCheckpointSpec()
    {
        var config = StepEngineSpec.Small with { Map = "2x3", Out = dir.Path };
        using var data = InMemoryDataset.Blobs(40, 1);
        using var trainer = new Trainer(config, data, data, CPU, new RunDirectory(dir.Path), new NoObserver());
        valid = dir.File("valid.ckpt");
        trainer.ToCheckpoint().Save(valid);
    }

    public void Dispose() => dir.Dispose();

    /// <summary>The header and the tensor bytes of a checkpoint file.</summary>
    internal static (JsonObject Header, byte[] Data) Split(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
        var header = JsonNode.Parse(bytes.AsSpan(12, length))!.AsObject();
        return (header, bytes[(12 + length)..^32]);
    }

    /// <summary>Writes a checkpoint file with this header and data, hashed as a real one is.</summary>
    internal static void Write(string path, byte[] json, byte[] data, uint? declaredLength = null)
    {
        var body = new List<byte>("DNMCKPT1"u8.ToArray());
        var len = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(len, declaredLength ?? (uint)json.Length);
        body.AddRange(len);
        body.AddRange(json);
        body.AddRange(data);
        var all = body.ToArray();
        File.WriteAllBytes(path, [.. all, .. SHA256.HashData(all)]);
    }

    private string Hostile(Action<JsonObject> edit, Func<byte[], byte[]>? data = null)
    {
        var (header, bytes) = Split(valid);
        edit(header);
        var path = dir.File($"hostile-{Guid.NewGuid():N}.ckpt");
        Write(path, Encoding.UTF8.GetBytes(header.ToJsonString()), data is null ? bytes : data(bytes));
        return path;
    }

    private static void AssertInvalid(string path, string mentions)
    {
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.StartsWith($"invalid checkpoint {path}: ", e.Message);
        Assert.Contains(mentions, e.Message);
    }

    [Fact]
    public void The_untouched_file_loads_and_a_rewritten_identical_one_too()
    {
        Assert.NotNull(Checkpoint.Load(valid));
        var same = Hostile(_ => { });
        Assert.Equal(Checkpoint.Load(valid).Tensors.Count, Checkpoint.Load(same).Tensors.Count);
    }

    [Fact]
    public void A_huge_declared_tensor_is_refused_before_allocation() =>
        // 2^40 floats (4 TB) declared for the prototypes, in a file of a few KB.
        AssertInvalid(Hostile(h => h["tensors"]!.AsArray()[^1]!["shape"] = new JsonArray(1L << 20, 1L << 20)), "'som/w' has shape [1048576,1048576]");

    [Fact]
    public void An_overflowing_shape_is_refused() =>
        AssertInvalid(Hostile(h => h["tensors"]!.AsArray()[0]!["shape"] = new JsonArray(long.MaxValue, 4, -2, 3)), "has shape");

    [Fact]
    public void A_missing_tensor_is_refused() =>
        AssertInvalid(Hostile(h => h["tensors"]!.AsArray().RemoveAt(0)), "it holds");

    [Fact]
    public void A_renamed_tensor_is_refused() =>
        AssertInvalid(Hostile(h => h["tensors"]!.AsArray()[1]!["name"] = "adam.m/evil"), "'adam.m/evil'");

    [Fact]
    public void An_absurd_config_is_refused_naming_the_key()
    {
        AssertInvalid(Hostile(h => h["config"]!["map"] = "65536x65536"), "map '65536x65536' has 4294967296 nodes");
        AssertInvalid(Hostile(h => h["config"]!["latent"] = 1 << 30), "latent must be in [1, 65536]");
        AssertInvalid(Hostile(h =>
        {
            h["config"]!["encoder"] = "conv";
            h["config"]!["channels"] = new JsonArray(4000, 4000, 4000);
        }), "parameters, more than the limit");
    }

    [Fact]
    public void An_absurd_image_shape_is_refused() =>
        AssertInvalid(Hostile(h => h["shape"]!["height"] = 1 << 30), "are not 1 or 3 channels");

    [Fact]
    public void A_header_length_beyond_the_file_is_refused()
    {
        var (header, data) = Split(valid);
        var path = dir.File("long-header.ckpt");
        Write(path, Encoding.UTF8.GetBytes(header.ToJsonString()), data, declaredLength: uint.MaxValue);
        AssertInvalid(path, "its header declares 4294967295 bytes");
    }

    [Fact]
    public void Missing_header_parts_and_negative_counters_are_refused()
    {
        AssertInvalid(Hostile(h => h.Remove("config")), "lacks the config");
        AssertInvalid(Hostile(h => h["tensors"] = null), "lacks the config");
        AssertInvalid(Hostile(h => h["state"]!["global-step"] = -5), "negative counter");
        AssertInvalid(Hostile(h => h["state"]!["phase"] = "warp"), "unreadable header");
    }

    [Fact]
    public void Tensor_bytes_that_do_not_fill_the_file_exactly_are_refused()
    {
        AssertInvalid(Hostile(_ => { }, d => d[..^4]), "the file holds");
        AssertInvalid(Hostile(_ => { }, d => [.. d, 0, 0, 0, 0]), "the file holds");
    }

    [Fact]
    public void A_wrong_hash_is_corrupt_not_invalid()
    {
        var bytes = File.ReadAllBytes(valid);
        bytes[^1] ^= 1;
        var path = dir.File("corrupt.ckpt");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.Contains("is corrupt (SHA-256 mismatch)", e.Message);
    }

    private sealed class NoObserver : ITrainingObserver;
}
