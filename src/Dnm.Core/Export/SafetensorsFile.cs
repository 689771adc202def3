using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using Dnm.Core.IO;
using Dnm.Core.Training;

namespace Dnm.Core.Export;

/// <summary>
/// The safetensors format (huggingface/safetensors), written and read from its specification: an unsigned 64-bit
/// little-endian header length N, N bytes of JSON (<c>{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin,
/// end]}, ..., "__metadata__": {string: string}}</c>, padded with spaces to a multiple of 8 bytes), then the tensors'
/// bytes, little-endian and row-major, offsets counted from the end of the header, with no gaps. Dnm's tensors are all
/// float32 (F32); reading any other type is an error.
/// </summary>
public static class SafetensorsFile
{
    /// <summary>The format's own bound on the header (100 MB), which keeps a corrupt length from allocating gigabytes.</summary>
    private const long MaxHeaderBytes = 100_000_000;
    private const string MetadataKey = "__metadata__";

    /// <summary>A file's tensors, in the order of their data, and its metadata.</summary>
    public sealed record Contents(IReadOnlyList<NamedArray> Tensors, IReadOnlyDictionary<string, string> Metadata)
    {
        public NamedArray? Find(string name) => Tensors.FirstOrDefault(t => t.Name == name);
    }

    /// <summary>Writes <paramref name="tensors"/> in their order, with <paramref name="metadata"/>, atomically.</summary>
    public static void Write(string path, IReadOnlyList<NamedArray> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors data is little-endian");
        var header = Header(tensors, metadata);
        using var file = new AtomicFileWriter(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        file.Stream.Write(length);
        file.Stream.Write(header);
        foreach (var t in tensors) file.Stream.Write(MemoryMarshal.AsBytes(t.Data.AsSpan()));
        file.Commit();
    }

    private static byte[] Header(IReadOnlyList<NamedArray> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject(MetadataKey);
            foreach (var (key, value) in metadata) json.WriteString(key, value);
            json.WriteEndObject();
            long offset = 0;
            foreach (var t in tensors)
            {
                if (t.Name == MetadataKey || !names.Add(t.Name)) throw new ArgumentException($"tensor name '{t.Name}' is reserved or repeated", nameof(tensors));
                if (t.Data.LongLength != Elements(t.Shape)) throw new ArgumentException($"tensor {t.Name}: {t.Data.LongLength} values for shape [{string.Join(",", t.Shape)}]", nameof(tensors));
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", "F32");
                json.WriteStartArray("shape");
                foreach (var d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += t.Data.LongLength * sizeof(float);
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Spaces up to a multiple of 8 bytes keep the data aligned for readers that map the file.
        var padded = (buffer.Length + 7) / 8 * 8;
        while (buffer.Length < padded) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    /// <summary>
    /// Reads a whole file. A missing file, a header that is not the format's, an unsupported type or offsets that do not
    /// tile the data are each a <see cref="CheckpointException"/> naming the file and the problem.
    /// </summary>
    public static Contents Read(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"model file {path} does not exist");
        var bytes = File.ReadAllBytes(path);
        var (entries, metadata, dataStart) = ParseHeader(path, bytes);
        var data = bytes.AsSpan(checked((int)dataStart));
        long expected = 0;
        var tensors = new List<NamedArray>(entries.Count);
        foreach (var (name, shape, begin, end) in entries.OrderBy(e => e.Begin))
        {
            if (begin != expected)
                throw Bad(path, $"tensor {name} starts at byte {begin} of the data, expected {expected} (the tensors must tile the data without gaps or overlaps)");
            if (end > data.Length) throw Bad(path, $"tensor {name} ends at byte {end} but the file holds {data.Length} bytes of data (truncated?)");
            var values = new float[(end - begin) / sizeof(float)];
            data[(int)begin..(int)end].CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
            tensors.Add(new NamedArray(name, shape, values));
            expected = end;
        }
        if (expected != data.Length) throw Bad(path, $"{data.Length - expected} bytes after the last tensor");
        return new Contents(tensors, metadata);
    }

    /// <summary>The metadata alone (the tensors are not read): for checking a file before anything slow starts.</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"model file {path} does not exist");
        using var file = File.OpenRead(path);
        var prefix = new byte[8];
        if (file.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) < 8) throw Bad(path, "shorter than the 8-byte header length");
        var length = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (length > MaxHeaderBytes || (long)length > file.Length - 8) throw Bad(path, $"header length {length} does not fit the file ({file.Length} bytes)");
        var bytes = new byte[8 + (int)length];
        prefix.CopyTo(bytes, 0);
        file.ReadExactly(bytes, 8, (int)length);
        return ParseHeader(path, bytes).Metadata;
    }

    private static (List<(string Name, long[] Shape, long Begin, long End)> Entries, Dictionary<string, string> Metadata, long DataStart)
        ParseHeader(string path, byte[] bytes)
    {
        if (bytes.Length < 8) throw Bad(path, "shorter than the 8-byte header length");
        var length = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (length > MaxHeaderBytes || length > (ulong)(bytes.Length - 8))
            throw Bad(path, $"header length {length} does not fit the file ({bytes.Length} bytes)");
        var entries = new List<(string, long[], long, long)>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)length));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "the header is not a JSON object");
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    foreach (var m in property.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : throw Bad(path, $"metadata value '{m.Name}' is not a string");
                    continue;
                }
                var info = property.Value;
                var dtype = info.GetProperty("dtype").GetString();
                if (dtype != "F32")
                    throw Bad(path, $"tensor {property.Name} is {dtype}; Dnm reads float32 (F32) tensors only");
                var shape = info.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                var offsets = info.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                if (shape.Any(d => d < 0) || offsets.Length != 2 || offsets[0] < 0 || offsets[1] - offsets[0] != Elements(shape) * sizeof(float))
                    throw Bad(path, $"tensor {property.Name}: shape [{string.Join(",", shape)}] does not match data_offsets [{string.Join(",", offsets)}]");
                entries.Add((property.Name, shape, offsets[0], offsets[1]));
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Bad(path, $"unreadable header ({e.Message})");
        }
        return (entries, metadata, 8 + (long)length);
    }

    private static long Elements(long[] shape) => shape.Aggregate(1L, (a, b) => checked(a * b));

    private static CheckpointException Bad(string path, string problem) => new($"{path} is not a valid safetensors file: {problem}");
}
