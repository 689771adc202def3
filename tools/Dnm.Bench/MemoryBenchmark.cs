using System.Globalization;

namespace Dnm.Bench;

/// <summary>
/// Runs many joint training steps and samples the resident set size: a leak of native tensors (a
/// step allocation that escapes its dispose scope) shows up as RSS that keeps growing. The first
/// sample is taken after the allocator has reached its working set, so growth after it is suspicious.
/// Exit code 1 when the growth exceeds the bound.
/// </summary>
internal static class MemoryBenchmark
{
    public static int Run(IReadOnlyList<string> args)
    {
        string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        double Number(string name, double fallback) => Option(name) is { } v ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;
        var options = StepBenchmarkOptions.Parse(args, new StepBenchmarkOptions(Batch: 64, Steps: 2000));
        var every = (int)Number("--every", 100);
        var boundPercent = Number("--bound-percent", 5);
        var boundMB = Number("--bound-mb", 50);

        using var bench = new StepBenchmark(options);
        var samples = new List<(int Step, double RssMB)>();
        var managedStart = 0.0;
        for (int i = 0; i < options.Steps; i++)
        {
            bench.Step(i);
            if ((i + 1) % every != 0) continue;
            // A forced collection: the managed heap then holds only what is still referenced.
            var managed = GC.GetTotalMemory(forceFullCollection: true) / 1e6;
            samples.Add((i + 1, ProcessMemory.RssMB()));
            if (samples.Count == 1) managedStart = managed;
            Console.WriteLine(FormattableString.Invariant($"step {i + 1,6}  rss_MB {samples[^1].RssMB,8:F1}  managed_MB {managed,6:F1}"));
        }
        if (samples.Count < 2)
        {
            Console.Error.WriteLine("need at least two samples: raise --steps or lower --every");
            return 2;
        }
        var (firstStep, first) = samples[0];
        var (lastStep, last) = samples[^1];
        var growth = last - first;
        var bound = Math.Max(first * boundPercent / 100, boundMB);
        var ok = growth <= bound;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"memory: batch={options.Batch} threads={options.Threads} steps={options.Steps} rss@{firstStep}={first:F1} MB rss@{lastStep}={last:F1} MB " +
            $"growth={growth:F1} MB ({100 * growth / first:F1}%) bound={bound:F1} MB peakRSS_MB={ProcessMemory.PeakRssMB():F0} " +
            $"managed_growth_MB={GC.GetTotalMemory(forceFullCollection: true) / 1e6 - managedStart:F1} -> {(ok ? "ok" : "FAIL")}"));
        return ok ? 0 : 1;
    }
}
