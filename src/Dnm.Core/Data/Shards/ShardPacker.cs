using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Dnm.Core.IO;
using SkiaSharp;

namespace Dnm.Core.Data.Shards;

/// <summary>How packed images are encoded.</summary>
public enum PackImageFormat
{
    /// <summary>Lossless: a byte-valued source (MNIST, a decoded folder) packs and reads back bit for bit.</summary>
    Png,
    /// <summary>Smaller for photographs; lossy.</summary>
    Jpeg,
}

/// <summary>What <c>dnm data pack</c> writes.</summary>
public sealed record PackOptions
{
    public required string Out { get; init; }
    /// <summary>A shard is closed before it would pass this many bytes (at least one sample per shard).</summary>
    public long ShardBytes { get; init; } = 256L << 20;
    /// <summary>Hold out this fraction of a source without a test split, by key hash (<see cref="DatasetView.IsHeldOut"/>).</summary>
    public double? TestFraction { get; init; }
    public PackImageFormat Format { get; init; } = PackImageFormat.Png;
    public int JpegQuality { get; init; } = 95;
    /// <summary>The source's spec, recorded in the manifest and checked when a pack resumes.</summary>
    public required string Source { get; init; }
}

/// <summary>Where a pack is: samples written of the total, and shards finished.</summary>
public sealed record PackProgress(string Split, long Samples, long Total, int Shards, long Bytes);

/// <summary>
/// Packs any dataset into WebDataset tar shards: <c>&lt;key&gt;.png|.jpg</c> and <c>&lt;key&gt;.cls</c> per sample, GNU tar
/// members with a fixed mtime (the same data packs into the same bytes), shards named <c>train-000000.tar</c> and
/// <c>test-000000.tar</c>, each with its <c>.idx</c> sidecar, and <c>manifest.json</c> last.
/// </summary>
/// <remarks>
/// Every shard is written to a temporary file and renamed when complete, and each finished shard is recorded in
/// <c>pack-progress.json</c>: a pack that is stopped resumes after its last finished shard when run again with the same
/// source and options, and nothing half-written ever carries a shard's name.
/// </remarks>
public static class ShardPacker
{
    public const string ProgressFile = "pack-progress.json";
    private static readonly DateTimeOffset FixedTime = DateTimeOffset.FromUnixTimeSeconds(946_684_800);

    public static ShardManifest Pack(IImageDataset train, IImageDataset? test, PackOptions options, IProgress<PackProgress>? progress, CancellationToken cancel)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ShardBytes, 1024);
        Directory.CreateDirectory(options.Out);
        var fingerprint = $"{options.Source}|{options.ShardBytes}|{options.TestFraction?.ToString("R", CultureInfo.InvariantCulture)}|{options.Format}|{options.JpegQuality}|{train.Count}|{train.Shape}";
        var state = LoadProgress(options.Out, fingerprint);

        var trainKeys = Keys(train);
        var splits = new List<(string Name, IImageDataset Data, int[] Indices, string[] Keys)>();
        if (test is not null)
        {
            splits.Add(("train", train, Enumerable.Range(0, train.Count).ToArray(), trainKeys));
            splits.Add(("test", test, Enumerable.Range(0, test.Count).ToArray(), Keys(test)));
        }
        else if (options.TestFraction is { } f)
        {
            // Split on the keys as written, so that --test-fraction F on the packed shards holds out the same samples.
            var held = Enumerable.Range(0, train.Count).ToLookup(i => DatasetView.IsHeldOut(trainKeys[i], f));
            splits.Add(("train", train, held[false].ToArray(), trainKeys));
            splits.Add(("test", train, held[true].ToArray(), trainKeys));
        }
        else
        {
            splits.Add(("train", train, Enumerable.Range(0, train.Count).ToArray(), trainKeys));
        }

        var manifestSplits = new Dictionary<string, IReadOnlyList<ShardFile>>();
        foreach (var (name, data, indices, keys) in splits)
            manifestSplits[name] = PackSplit(name, data, indices, keys, options, state, fingerprint, progress, cancel);

        var manifest = new ShardManifest
        {
            Source = options.Source,
            Image = new ManifestShape(train.Shape.Channels, train.Shape.Height, train.Shape.Width),
            Classes = train.ClassNames,
            TestFraction = test is null ? options.TestFraction : null,
            Splits = manifestSplits,
        };
        WriteText(Path.Combine(options.Out, ShardManifest.FileName), manifest.ToJson());
        File.Delete(Path.Combine(options.Out, ProgressFile));
        return manifest;
    }

    private static string[] Keys(IImageDataset data)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        var keys = new string[data.Count];
        for (int i = 0; i < keys.Length; i++) used.Add(keys[i] = KeyOf(data, i, used));
        return keys;
    }

    private static List<ShardFile> PackSplit(string split, IImageDataset data, int[] indices, string[] keys, PackOptions options, PackState state,
        string fingerprint, IProgress<PackProgress>? progress, CancellationToken cancel)
    {
        var done = state.Shards.Where(s => s.Split == split).OrderBy(s => s.Start).ToList();
        // Shards finished by an earlier pack: kept when they still verify; the pack goes on after the last of them.
        foreach (var s in done)
        {
            var path = Path.Combine(options.Out, s.File.File);
            if (!File.Exists(path) || Sha256(path) != s.File.Sha256)
            {
                done = done.TakeWhile(d => d.Start < s.Start).ToList();
                break;
            }
        }
        var files = done.Select(d => d.File).ToList();
        int position = done.Count == 0 ? 0 : done[^1].Start + done[^1].File.Samples;
        long bytesSoFar = files.Sum(f => f.Bytes);
        progress?.Report(new PackProgress(split, position, indices.Length, files.Count, bytesSoFar));

        const int Chunk = 256;
        ShardBuilder? shard = null;
        int shardStart = position;
        var pixels = new float[data.Shape.Pixels];
        while (position < indices.Length)
        {
            cancel.ThrowIfCancellationRequested();
            int n = Math.Min(Chunk, indices.Length - position);
            var encoded = new byte[n][];
            var labels = new int[n];
            // Encoding is most of the work: every core encodes; the tar is written in order below.
            ParallelReads.For(n, Environment.ProcessorCount, j =>
            {
                var buffer = new float[data.Shape.Pixels];
                data.CopyImage(indices[position + j], buffer);
                encoded[j] = Encode(buffer, data.Shape, options);
            });
            for (int j = 0; j < n; j++)
            {
                int index = indices[position + j];
                labels[j] = data.Label(index);
                var key = keys[index];
                long size = 1024 + Round512(encoded[j].Length) + (labels[j] >= 0 ? 1024 : 0);
                if (shard is not null && shard.Samples > 0 && shard.Bytes + size > options.ShardBytes)
                {
                    files.Add(Finish(shard, split, shardStart, options, state, fingerprint));
                    bytesSoFar += files[^1].Bytes;
                    progress?.Report(new PackProgress(split, position + j, indices.Length, files.Count, bytesSoFar));
                    shard = null;
                }
                if (shard is null)
                {
                    shard = new ShardBuilder(options.Out, $"{split}-{files.Count:D6}.tar");
                    shardStart = position + j;
                }
                shard.Add(key, options.Format == PackImageFormat.Png ? "png" : "jpg", encoded[j], labels[j]);
            }
            position += n;
            progress?.Report(new PackProgress(split, position, indices.Length, files.Count, bytesSoFar + (shard?.Bytes ?? 0)));
        }
        if (shard is not null)
        {
            files.Add(Finish(shard, split, shardStart, options, state, fingerprint));
            progress?.Report(new PackProgress(split, position, indices.Length, files.Count, bytesSoFar + files[^1].Bytes));
        }
        return files;
    }

    private static long Round512(long n) => (n + 511) / 512 * 512;

    /// <summary>
    /// A WebDataset key from the sample's key: the file extension dropped and the remaining dots of the file name made
    /// '_' (a key ends at the first dot of the file name); a key met twice gets its index appended.
    /// </summary>
    private static string KeyOf(IImageDataset data, int index, HashSet<string> used)
    {
        var key = data.Key(index).Replace('\\', '/');
        int slash = key.LastIndexOf('/');
        var file = key[(slash + 1)..];
        var ext = Path.GetExtension(file);
        if (ext.Length > 0 && ext.Length <= 5) file = file[..^ext.Length];
        file = file.Replace('.', '_');
        if (file.Length == 0) file = index.ToString(CultureInfo.InvariantCulture);
        key = (slash >= 0 ? key[..(slash + 1)] : "") + file;
        key = key.Replace('\t', '_').Replace('\n', '_').TrimStart('/');
        return used.Contains(key) ? $"{key}_{index}" : key;
    }

    private static byte[] Encode(float[] pixels, ImageShape shape, PackOptions options)
    {
        int plane = shape.Height * shape.Width;
        SKImageInfo info;
        byte[] raw;
        if (shape.Channels == 1 && options.Format == PackImageFormat.Png)
        {
            info = new SKImageInfo(shape.Width, shape.Height, SKColorType.Gray8, SKAlphaType.Opaque);
            raw = new byte[plane];
            for (int i = 0; i < plane; i++) raw[i] = ToByte(pixels[i]);
        }
        else
        {
            info = new SKImageInfo(shape.Width, shape.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
            raw = new byte[plane * 4];
            for (int i = 0; i < plane; i++)
            {
                byte r = ToByte(pixels[i]);
                byte g = shape.Channels == 3 ? ToByte(pixels[plane + i]) : r;
                byte b = shape.Channels == 3 ? ToByte(pixels[2 * plane + i]) : r;
                (raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]) = (r, g, b, 255);
            }
        }
        using var image = SKImage.FromPixelCopy(info, raw);
        using var encoded = image.Encode(options.Format == PackImageFormat.Png ? SKEncodedImageFormat.Png : SKEncodedImageFormat.Jpeg,
            options.Format == PackImageFormat.Png ? 100 : options.JpegQuality);
        return encoded.ToArray();
    }

    private static byte ToByte(float v) => (byte)Math.Clamp(MathF.Round(v * 255f), 0f, 255f);

    private static ShardFile Finish(ShardBuilder shard, string split, int start, PackOptions options, PackState state, string fingerprint)
    {
        var file = shard.Complete();
        state.Shards.Add(new PackedShard(split, start, file));
        WriteText(Path.Combine(options.Out, ProgressFile), JsonSerializer.Serialize(state with { Fingerprint = fingerprint }));
        return file;
    }

    private static PackState LoadProgress(string dir, string fingerprint)
    {
        var path = Path.Combine(dir, ProgressFile);
        if (!File.Exists(path)) return new PackState(fingerprint, []);
        try
        {
            var state = JsonSerializer.Deserialize<PackState>(File.ReadAllText(path));
            if (state is not null && state.Fingerprint == fingerprint) return state with { Shards = state.Shards.ToList() };
        }
        catch (JsonException)
        {
            // An unreadable record of progress is no progress: pack from the start.
        }
        return new PackState(fingerprint, []);
    }

    internal static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static void WriteText(string path, string text)
    {
        using var file = new AtomicFileWriter(path);
        file.Stream.Write(Encoding.UTF8.GetBytes(text));
        file.Commit();
    }

    private sealed record PackedShard(string Split, int Start, ShardFile File);

    private sealed record PackState(string Fingerprint, List<PackedShard> Shards);

    /// <summary>One shard being written: a temporary file until <see cref="Complete"/> renames it.</summary>
    private sealed class ShardBuilder
    {
        private readonly AtomicFileWriter file;
        private readonly TarWriter tar;
        private readonly string path;

        public ShardBuilder(string dir, string name)
        {
            path = Path.Combine(dir, name);
            file = new AtomicFileWriter(path);
            tar = new TarWriter(file.Stream, TarEntryFormat.Gnu, leaveOpen: true);
        }

        public int Samples { get; private set; }

        public long Bytes => file.Stream.Position;

        public void Add(string key, string extension, byte[] image, int label)
        {
            Write($"{key}.{extension}", image);
            if (label >= 0) Write($"{key}.cls", Encoding.ASCII.GetBytes(label.ToString(CultureInfo.InvariantCulture)));
            Samples++;
        }

        private void Write(string name, byte[] data)
        {
            var entry = new GnuTarEntry(TarEntryType.RegularFile, name)
            {
                DataStream = new MemoryStream(data, writable: false),
                ModificationTime = FixedTime,
                AccessTime = FixedTime,
                ChangeTime = FixedTime,
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            };
            tar.WriteEntry(entry);
        }

        public ShardFile Complete()
        {
            tar.Dispose();
            file.Stream.Flush();
            file.Stream.Position = 0;
            var sha = Convert.ToHexStringLower(SHA256.HashData(file.Stream));
            file.Stream.Position = 0;
            var index = ShardIndex.Scan(file.Stream, path, BadFilePolicy.Fail);
            long bytes = file.Stream.Length;
            WriteText(path + ShardIndex.Suffix, index.ToText());
            file.Commit();
            return new ShardFile(Path.GetFileName(path), index.Samples.Count, bytes, sha);
        }
    }
}
