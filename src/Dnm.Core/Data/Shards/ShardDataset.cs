using Dnm.Core.IO;
using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Dnm.Core.Data.Shards;

/// <summary>How to read a shard set.</summary>
public sealed record ShardOptions
{
    /// <summary>The shape images decode to where no manifest gives one (shards from elsewhere): the run's image-size and image-channels.</summary>
    public ImageShape FallbackShape { get; init; } = new(1, 64, 64);

    public BadFilePolicy OnBadImage { get; init; } = BadFilePolicy.Fail;

    /// <summary>Images that declare more pixels are refused before they are decoded (max-image-pixels).</summary>
    public long MaxImagePixels { get; init; } = ImageDecoder.DefaultMaxPixels;

    /// <summary>Shards indexed, checked or verified at once while opening.</summary>
    public int Parallelism { get; init; } = Math.Clamp(Environment.ProcessorCount, 2, 8);
}

/// <summary>
/// A WebDataset shard set as a random-access dataset that holds no pixels: a sample is read (one positional read, or one
/// Range request) and decoded when a step asks for it, so resident memory does not grow with the dataset, and a rank
/// reads only the samples of its own micro-batches. What is held per sample is its place (offset, length), its label
/// and its key: about 20 bytes plus the key.
/// </summary>
/// <remarks>
/// Opening checks every shard the manifest lists against its size and, for local shards, its SHA-256 (a one-time
/// sequential read at disk speed; remote shards are checked by size, and by SHA-256 where they must be read whole to be
/// indexed). Each shard's index comes from its <c>.idx</c> sidecar when one matches its size, else from a scan of its
/// tar headers. Under <see cref="BadFilePolicy.Skip"/> every image is also decoded once while opening, so that a bad one
/// is left out (and counted) before the sample order is fixed, never met in the middle of a step.
/// </remarks>
public sealed class ShardDataset : IImageDataset
{
    private readonly IShardStore store;
    private readonly int[] shardStart;
    private readonly long[] offsets;
    private readonly int[] lengths;
    private readonly int[] labels;
    private readonly byte[] keyBytes;
    private readonly int[] keyStart;
    private readonly long maxPixels;

    private ShardDataset(string name, IShardStore store, ImageShape shape, IReadOnlyList<string> classNames, IReadOnlyList<ShardIndex> indexes,
        IReadOnlyList<string> skipped, long maxPixels)
    {
        Name = name;
        this.store = store;
        Shape = shape;
        ClassNames = classNames;
        SkippedSamples = skipped;
        this.maxPixels = maxPixels;
        int count = checked(indexes.Sum(x => x.Samples.Count));
        shardStart = new int[indexes.Count + 1];
        offsets = new long[count];
        lengths = new int[count];
        labels = new int[count];
        keyStart = new int[count + 1];
        var keys = new MemoryStream();
        int i = 0;
        for (int s = 0; s < indexes.Count; s++)
        {
            shardStart[s] = i;
            foreach (var sample in indexes[s].Samples)
            {
                offsets[i] = sample.Offset;
                lengths[i] = sample.Length;
                labels[i] = sample.Label;
                keyStart[i] = checked((int)keys.Length);
                keys.Write(Encoding.UTF8.GetBytes(sample.Key));
                i++;
            }
        }
        shardStart[^1] = i;
        keyStart[^1] = checked((int)keys.Length);
        keyBytes = keys.ToArray();
    }

    public string Name { get; }

    public int Count => offsets.Length;

    public ImageShape Shape { get; }

    public IReadOnlyList<string> ClassNames { get; }

    public bool DecodesOnRead => true;

    /// <summary>"shard-file:key — reason" of every sample left out under <see cref="BadFilePolicy.Skip"/>.</summary>
    public IReadOnlyList<string> SkippedSamples { get; }

    public int ShardCount => store.Count;

    /// <summary>Bytes this process has read from the shards (opening included), for the one-rank-reads-its-part checks.</summary>
    public long BytesRead => store.BytesRead;

    /// <summary>Opens <paramref name="source"/>; see the remarks for what is checked.</summary>
    public static ShardDataset Open(ShardSource source, ShardOptions options, IProgress<string>? progress = null)
    {
        var store = source.Store;
        try
        {
            var manifest = source.Manifest;
            var shape = manifest?.Image?.ToShape() ?? options.FallbackShape;
            var indexes = new ShardIndex[store.Count];
            ParallelReads.For(store.Count, options.Parallelism, s =>
            {
                indexes[s] = IndexOf(store, s, manifest, options.OnBadImage);
            });
            progress?.Report($"{source.Description}: {store.Count} shards, {indexes.Sum(x => x.Samples.Count)} samples indexed");

            var skipped = new List<string>();
            foreach (var (index, s) in indexes.Select((x, s) => (x, s)))
                skipped.AddRange(index.Skipped.Select(k => $"{store.FileName(s)}:{k.Key} {k.Reason}"));

            // Labels: all or none. A labelled set with one unlabelled sample is a data error, like an undecodable image.
            bool labelled = indexes.Any(x => x.HasLabels);
            if (labelled)
            {
                for (int s = 0; s < indexes.Length; s++)
                {
                    var unlabelled = indexes[s].Samples.Where(x => x.Label < 0).ToList();
                    if (unlabelled.Count == 0) continue;
                    if (options.OnBadImage == BadFilePolicy.Fail)
                        throw new DataException($"shard {store.Describe(s)}: sample '{unlabelled[0].Key}' has no .cls label, but other samples have one. Add its label, or train with --on-bad-image skip to leave unlabelled samples out.");
                    skipped.AddRange(unlabelled.Select(x => $"{store.FileName(s)}:{x.Key} has no .cls label"));
                    indexes[s] = new ShardIndex(indexes[s].ShardBytes, indexes[s].Samples.Where(x => x.Label >= 0).ToList(), indexes[s].Skipped);
                }
            }
            int maxLabel = labelled ? indexes.SelectMany(x => x.Samples).Max(x => x.Label) : -1;
            IReadOnlyList<string> classes = manifest?.Classes is { Count: > 0 } named ? named
                : Enumerable.Range(0, maxLabel + 1).Select(c => c.ToString(CultureInfo.InvariantCulture)).ToArray();
            if (maxLabel >= classes.Count)
                throw new DataException($"{source.Description} has label {maxLabel}, but its manifest names only {classes.Count} classes. Pack the data again with `dnm data pack`.");

            if (options.OnBadImage == BadFilePolicy.Skip)
                for (int s = 0; s < indexes.Length; s++)
                    indexes[s] = Decodable(store, s, indexes[s], shape, options, skipped);

            var dataset = new ShardDataset(source.Description, store, shape, labelled ? classes : [], indexes, skipped, options.MaxImagePixels);
            if (dataset.Count == 0)
                throw new DataException($"{source.Description} has no samples{(skipped.Count > 0 ? $": all {skipped.Count} were bad (first: {skipped[0]})" : "")}. Check the shards.");
            return dataset;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    private static ShardIndex IndexOf(IShardStore store, int s, ShardManifest? manifest, BadFilePolicy onBad)
    {
        long length = store.Length(s);
        var listed = manifest?.Find(store.FileName(s));
        if (listed is not null && listed.Bytes != length)
            throw new DataException($"shard {store.Describe(s)} has {length} bytes, but manifest.json says {listed.Bytes}: it is incomplete or was replaced. Download or pack it again.");
        bool local = store is LocalShardStore;
        // A local shard's SHA-256 is one sequential read at disk speed; a remote one is hashed only when it is streamed
        // whole to be indexed, below.
        if (listed is not null && local)
        {
            using var stream = store.OpenSequential(s);
            RequireSha256(store, s, listed, Convert.ToHexStringLower(SHA256.HashData(stream)));
        }
        var sidecar = store.ReadSidecar(s, ShardIndex.Suffix);
        var index = sidecar is null ? null : ShardIndex.TryParse(sidecar, length);
        if (index is not null && onBad == BadFilePolicy.Fail) return index;
        // A full scan: locally the headers only; remotely the whole shard, hashed on the way.
        using var raw = store.OpenSequential(s);
        using var hashing = local || listed is null ? null : new HashingStream(raw);
        index = ShardIndex.Scan(hashing ?? raw, store.Describe(s), onBad);
        if (hashing is not null)
        {
            hashing.Drain();
            RequireSha256(store, s, listed!, hashing.Hash());
        }
        return index;
    }

    private static void RequireSha256(IShardStore store, int s, ShardFile listed, string actual)
    {
        if (actual != listed.Sha256)
            throw new DataException($"shard {store.Describe(s)} has SHA-256 {actual}, but manifest.json says {listed.Sha256}: it is corrupt or was replaced. Download or pack it again.");
    }

    /// <summary>Under skip: decodes every image of a shard once and keeps the ones that decode.</summary>
    private static ShardIndex Decodable(IShardStore store, int s, ShardIndex index, ImageShape shape, ShardOptions options, List<string> skipped)
    {
        var ok = new bool[index.Samples.Count];
        var reasons = new string?[index.Samples.Count];
        ParallelReads.For(index.Samples.Count, options.Parallelism, i =>
        {
            var sample = index.Samples[i];
            var encoded = new byte[sample.Length];
            var pixels = new byte[shape.Pixels];
            store.ReadAt(s, sample.Offset, encoded);
            var failure = ImageDecoder.TryDecode(encoded, shape, pixels, options.MaxImagePixels, out var header);
            ok[i] = failure == DecodeFailure.None;
            if (!ok[i]) reasons[i] = ImageDecoder.Describe(failure, header, options.MaxImagePixels);
        });
        lock (skipped)
            for (int i = 0; i < ok.Length; i++)
                if (!ok[i]) skipped.Add($"{store.FileName(s)}:{index.Samples[i].Key} {reasons[i]}");
        return new ShardIndex(index.ShardBytes, index.Samples.Where((_, i) => ok[i]).ToList(), index.Skipped);
    }

    public int Label(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return labels[index];
    }

    public string Key(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return Encoding.UTF8.GetString(keyBytes, keyStart[index], keyStart[index + 1] - keyStart[index]);
    }

    /// <summary>The size of a sample's encoded image in its shard.</summary>
    public int EncodedLength(int index) => lengths[index];

    /// <summary>The shard a sample lies in (its file name), for messages and placements.</summary>
    public string ShardOf(int index) => store.FileName(Shard(index));

    public void CopyImage(int index, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        int shard = Shard(index);
        var encoded = ArrayPool<byte>.Shared.Rent(lengths[index]);
        var pixels = ArrayPool<byte>.Shared.Rent(Shape.Pixels);
        try
        {
            var bytes = encoded.AsSpan(0, lengths[index]);
            store.ReadAt(shard, offsets[index], bytes);
            var failure = ImageDecoder.TryDecode(bytes, Shape, pixels.AsSpan(0, Shape.Pixels), maxPixels, out var header);
            if (failure != DecodeFailure.None)
                throw new DataException($"shard {store.Describe(shard)}: sample '{Key(index)}' {ImageDecoder.Describe(failure, header, maxPixels)}. Replace it, or train with --on-bad-image skip to leave such samples out.");
            PixelBytes.ToUnitFloats(pixels.AsSpan(0, Shape.Pixels), destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(encoded);
            ArrayPool<byte>.Shared.Return(pixels);
        }
    }

    private int Shard(int index)
    {
        int s = Array.BinarySearch(shardStart, index);
        if (s < 0) return ~s - 1;
        // Several shards may start at the same index when some are empty: take the last, the one that holds it.
        while (s + 1 < shardStart.Length - 1 && shardStart[s + 1] == index) s++;
        return s;
    }

    public void Dispose() => store.Dispose();

    /// <summary>Hashes what passes through; <see cref="Drain"/> reads the rest, so a scan that stopped early still hashes the whole shard.</summary>
    private sealed class HashingStream(Stream inner) : ForwardReadStream
    {
        private readonly IncrementalHash sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public override int Read(Span<byte> destination)
        {
            int n = inner.Read(destination);
            sha.AppendData(destination[..n]);
            return n;
        }

        public void Drain()
        {
            var buffer = new byte[1 << 16];
            while (Read(buffer) > 0) { }
        }

        public string Hash() => Convert.ToHexStringLower(sha.GetHashAndReset());

        protected override void Dispose(bool disposing)
        {
            if (disposing) sha.Dispose();
            base.Dispose(disposing);
        }

    }
}
