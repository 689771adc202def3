using System.Diagnostics;
using System.Globalization;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Training;

namespace Dnm.Bench;

/// <summary>
/// Loader throughput: decoded (and, when asked, augmented) images/s through exactly the path a training step takes.
/// The dataset is opened by <see cref="TrainingRun.OpenTrain"/> from a run configuration, the batches are the epoch
/// order's (<see cref="ShardSampler"/>) and each one is taken from a <see cref="BatchPrefetcher"/>, which fills it with
/// <see cref="BatchBuffer"/> (decoding on every core) and augments it, while the next one is prefetched, as
/// <see cref="StepRunner"/> does. No model runs, so the loader is the whole cost.
/// </summary>
/// <remarks>
/// The clock starts before the dataset is opened: a folder below the decoded budget is decoded once while it opens, a
/// shard set has its tar headers indexed, so "images/s" is what the first epoch of a run costs. The epoch alone is
/// reported too. scripts/bench-loader.sh interleaves it with scripts/peer-loader.py.
/// </remarks>
internal static class LoaderBenchmark
{
    public const string Usage =
        "Dnm.Bench loader --dataset <shards:dir | folder:dir | spec> [--size 64] [--channels 3] [--batch 256] [--batches 0 (one epoch)] " +
        "[--seed 1] [--augment-rotation 0] [--augment-shift 0]";

    public static int Run(IReadOnlyList<string> args)
    {
        string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        int Int(string name, int fallback) => Option(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        double Number(string name, double fallback) => Option(name) is { } v ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;
        if (Option("--dataset") is not { } spec)
        {
            Console.Error.WriteLine($"usage: {Usage}");
            return 2;
        }
        DnmConfig config;
        try
        {
            config = new DnmConfig
            {
                Dataset = spec,
                ImageSize = Int("--size", 64),
                ImageChannels = Int("--channels", 3),
                BatchSize = Int("--batch", 256),
                Seed = (ulong)Int("--seed", 1),
                AugmentRotation = Number("--augment-rotation", 0),
                AugmentShift = Number("--augment-shift", 0),
            }.Validated();
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"{e.Message}\nusage: {Usage}");
            return 2;
        }
        int maxBatches = Int("--batches", 0);

        var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        IImageDataset dataset;
        try
        {
            dataset = TrainingRun.OpenTrain(config, progress: null);
        }
        catch (Exception e) when (e is DataException or DatasetSpecException)
        {
            Console.Error.WriteLine(e.Message);
            return e is DataException ? 3 : 2;
        }
        using var data = dataset;
        var opened = clock.Elapsed;
        var augmenter = ImageAugmenter.For(config, data.Shape);
        int steps = ShardSampler.StepsPerEpoch(data.Count, config.BatchSize);
        if (maxBatches > 0) steps = Math.Min(steps, maxBatches);
        var order = ShardSampler.EpochOrder(data.Count, config.Seed, epoch: 0);

        long images = 0;
        double sum = 0;
        var waited = TimeSpan.Zero;
        using (var batches = new BatchPrefetcher(data, augmenter, config.BatchSize))
        {
            for (int step = 0; step < steps; step++)
            {
                var batch = batches.Take(0, ShardSampler.GlobalBatch(order, step, config.BatchSize), out var wait);
                waited += wait;
                if (step + 1 < steps) batches.Prefetch(0, ShardSampler.GlobalBatch(order, step + 1, config.BatchSize).ToArray());
                images += batch.Count;
                // The mean pixel of each batch's first image shows that something was decoded (reading the whole batch on
                // this thread would take a core's time from the decoders the step does not take).
                foreach (var v in batch.FilledPixels[..data.Shape.Pixels]) sum += v;
            }
        }
        var total = clock.Elapsed;
        // CPU time per image does not depend on how busy a shared machine is, unlike images/s.
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuStart;
        var epoch = total - opened;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"impl=dnm loader={Kind(spec)} decodesOnRead={data.DecodesOnRead} threads={BatchBuffer.DecodeThreads} batch={config.BatchSize} " +
            $"shape={data.Shape} augment={augmenter.Enabled} images={images} open_s={opened.TotalSeconds:F2} epoch_s={epoch.TotalSeconds:F2} " +
            $"seconds={total.TotalSeconds:F2} images/s={images / total.TotalSeconds:F1} epoch_images/s={images / epoch.TotalSeconds:F1} " +
            $"wait_s={waited.TotalSeconds:F2} cpu_us/img={cpu.TotalMicroseconds / Math.Max(1, images):F0} meanPixel={sum / Math.Max(1, steps * (long)data.Shape.Pixels):F4} peakRSS_MB={ProcessMemory.PeakRssMB():F0}"));
        return 0;
    }

    private static string Kind(string spec) => spec.IndexOf(':', StringComparison.Ordinal) is var colon and > 0 ? spec[..colon] : spec;
}
