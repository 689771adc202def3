using System.CommandLine;
using System.Globalization;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Data.Shards;
using Dnm.Node.Progress;

namespace Dnm.Node.Commands;

/// <summary>
/// `dnm data fetch mnist|fashion-mnist`: download and verify a dataset ahead of training (e.g. in an init container).
/// `dnm data pack --from &lt;spec&gt; --out &lt;dir&gt;`: write any dataset as WebDataset tar shards with a manifest.
/// </summary>
public static class DataCommand
{
    public static Command Create(CliContext context) => new("data", "Manage datasets") { Fetch(context), Pack(context) };

    private static Command Fetch(CliContext context)
    {
        var name = new Argument<string>("dataset") { Description = "The dataset to fetch: mnist or fashion-mnist" };
        name.AcceptOnlyFromAmong("mnist", "fashion-mnist");
        var dataDir = new Option<string>("--data-dir") { Description = "Dataset cache [default: $DNM_DATA, else ~/.cache/dnm]" };
        var fetch = new Command("fetch", "Download a dataset into the cache and verify it (SHA-256)") { name, dataDir };
        fetch.SetAction(parsed =>
        {
            var root = parsed.GetValue(dataDir) ?? DatasetCatalog.DefaultDataDir();
            var progress = new FetchProgressWriter(context.Out, context.Interactive, context.Clock);
            var fashion = parsed.GetValue(name) == "fashion-mnist";
            MnistFiles files;
            try
            {
                files = (fashion ? new MnistStore(MnistStore.FashionMnist) : new MnistStore()).EnsureAsync(root, progress, context.Cancel).GetAwaiter().GetResult();
            }
            finally
            {
                progress.Finish();
            }
            context.Out.WriteLine($"{(fashion ? "Fashion-MNIST" : "MNIST")} is ready in {files.Directory}:");
            foreach (var file in new[] { files.TrainImages, files.TrainLabels, files.TestImages, files.TestLabels })
                context.Out.WriteLine($"  {Path.GetFileName(file),-26}{ProgressText.Bytes(new FileInfo(file).Length)}");
            return CliErrors.Ok;
        });
        return fetch;
    }

    private static Command Pack(CliContext context)
    {
        var from = new Option<string>("--from") { Description = "The dataset to pack: any dataset spec (mnist, fashion-mnist, idx:..., folder:..., shards:...)", Required = true };
        var output = new Option<string>("--out") { Description = "The folder for the shards, their .idx files and manifest.json", Required = true };
        var shardSize = new Option<string>("--shard-size") { Description = "Close a shard before it passes this size (e.g. 256MB, 1GB)", DefaultValueFactory = _ => "256MB" };
        var testFraction = new Option<double?>("--test-fraction") { Description = "For a source without a test split: hold out this fraction, by a hash of each sample's key [default: none]" };
        var format = new Option<string>("--format") { Description = "Image encoding: png (lossless) or jpeg", DefaultValueFactory = _ => "png" };
        format.AcceptOnlyFromAmong(KebabEnum.Names<PackImageFormat>());
        var quality = new Option<int>("--jpeg-quality") { Description = "JPEG quality, 1-100", DefaultValueFactory = _ => 95 };
        var imageSize = new Option<int>("--image-size") { Description = "Folder sources: resize images to this square size", DefaultValueFactory = _ => 64 };
        var channels = new Option<int>("--image-channels") { Description = "Folder sources: 1 (grayscale) or 3 (RGB)", DefaultValueFactory = _ => 1 };
        var onBad = new Option<string>("--on-bad-image") { Description = "Folder sources: fail on an unreadable image, or skip it", DefaultValueFactory = _ => "fail" };
        onBad.AcceptOnlyFromAmong(KebabEnum.Names<BadFilePolicy>());
        var dataDir = new Option<string>("--data-dir") { Description = "Dataset cache [default: $DNM_DATA, else ~/.cache/dnm]" };
        var pack = new Command("pack", "Write a dataset as WebDataset tar shards (train-000000.tar, ...) with .idx files and manifest.json; resumable")
            { from, output, shardSize, testFraction, format, quality, imageSize, channels, onBad, dataDir };
        pack.SetAction(parsed =>
        {
            var spec = parsed.GetValue(from)!;
            var fraction = parsed.GetValue(testFraction);
            if (fraction is { } f && !(f > 0 && f < 1)) throw new ConfigException($"test-fraction must lie strictly between 0 and 1, got {f}");
            if (parsed.GetValue(quality) is < 1 or > 100) throw new ConfigException($"jpeg-quality must be in 1..100, got {parsed.GetValue(quality)}");
            if (parsed.GetValue(channels) is not (1 or 3)) throw new ConfigException($"image-channels must be 1 or 3, got {parsed.GetValue(channels)}");
            if (parsed.GetValue(imageSize) is < 1 or > 4096) throw new ConfigException($"image-size must be in 1..4096, got {parsed.GetValue(imageSize)}");
            var bytes = ParseSize(parsed.GetValue(shardSize)!);
            var dir = parsed.GetValue(dataDir) ?? DatasetCatalog.DefaultDataDir();
            var folder = new FolderOptions
            {
                Channels = parsed.GetValue(channels), Height = parsed.GetValue(imageSize), Width = parsed.GetValue(imageSize),
                OnBadFile = KebabEnum.Parse<BadFilePolicy>("on-bad-image", parsed.GetValue(onBad)),
            };
            var fetch = new FetchProgressWriter(context.Error, live: false, context.Clock);
            using var train = DatasetCatalog.Open(spec, "train", dir, null, folder, fetch);
            // A source with its own test split packs it as the test split; --test-fraction is for sources without one.
            using var test = fraction is null ? DatasetCatalog.TryOpen(spec, "test", dir, null, folder, fetch) : null;
            context.Out.WriteLine($"packing {train.Name} ({train.Count} samples, {train.Shape}){(test is null ? "" : $" and {test.Name} ({test.Count})")} into {parsed.GetValue(output)}");
            var options = new PackOptions
            {
                Out = parsed.GetValue(output)!, ShardBytes = bytes, TestFraction = fraction, Source = spec,
                Format = KebabEnum.Parse<PackImageFormat>("format", parsed.GetValue(format)), JpegQuality = parsed.GetValue(quality),
            };
            var manifest = ShardPacker.Pack(train, test, options, new PackProgressWriter(context), context.Cancel);
            foreach (var (split, files) in manifest.Splits)
                context.Out.WriteLine($"  {split}: {files.Count} shards, {files.Sum(f => f.Samples)} samples, {ProgressText.Bytes(files.Sum(f => f.Bytes))}");
            context.Out.WriteLine($"wrote {Path.Combine(options.Out, ShardManifest.FileName)}; train with --dataset shards:{options.Out}");
            return CliErrors.Ok;
        });
        return pack;
    }

    /// <summary>"256MB", "1GB", "64KB" (powers of 1024) or a plain number of bytes.</summary>
    public static long ParseSize(string text)
    {
        var t = text.Trim().ToUpperInvariant();
        long unit = 1;
        foreach (var (suffix, value) in new[] { ("GB", 1L << 30), ("MB", 1L << 20), ("KB", 1L << 10), ("G", 1L << 30), ("M", 1L << 20), ("K", 1L << 10), ("B", 1L) })
        {
            if (!t.EndsWith(suffix, StringComparison.Ordinal)) continue;
            unit = value;
            t = t[..^suffix.Length].Trim();
            break;
        }
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0 || n > (1L << 42) / unit || n * unit < 1024)
            throw new ConfigException($"shard-size '{text}' is not a size of at least 1KB such as 256MB or 1GB");
        return n * unit;
    }

    /// <summary>A line per finished shard and at most one every few seconds in between.</summary>
    private sealed class PackProgressWriter(CliContext context) : IProgress<PackProgress>
    {
        private DateTimeOffset last = DateTimeOffset.MinValue;
        private int shards = -1;

        public void Report(PackProgress value)
        {
            var now = context.Clock.GetUtcNow();
            if (value.Shards == shards && now - last < TimeSpan.FromSeconds(5) && value.Samples < value.Total) return;
            (last, shards) = (now, value.Shards);
            context.Out.WriteLine($"  {value.Split}: {value.Samples}/{value.Total} samples, {value.Shards} shards done, {ProgressText.Bytes(value.Bytes)}");
        }
    }
}
