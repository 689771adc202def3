using System.Diagnostics;
using System.Globalization;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Runtime;
using Dnm.Core.Som;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Bench;

/// <summary>Options of the training-step benchmarks (the peer's defaults: batch 256, 2 threads, 5 + 30 steps).</summary>
internal sealed record StepBenchmarkOptions(int Batch = 256, int Threads = 2, int Warmup = 5, int Steps = 30, bool Phases = false, bool Mlp = false, int MicroBatch = 0)
{
    public static StepBenchmarkOptions Parse(IReadOnlyList<string> args, StepBenchmarkOptions defaults)
    {
        string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        int Int(string name, int fallback) => Option(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        return new StepBenchmarkOptions(Int("--batch", defaults.Batch), Int("--threads", defaults.Threads),
            Int("--warmup", defaults.Warmup), Int("--steps", defaults.Steps), args.Contains("--phases"), args.Contains("--mlp"),
            Int("--micro-batch", defaults.MicroBatch));
    }
}

/// <summary>
/// Times the single-process joint training step exactly as pytorch_dnm_bench.py (the peer) does: the
/// paper's model, real MNIST in order (batch n starts at n·B mod ⌊N/B⌋·B), prototypes ~ 0.1·N(0,1),
/// σ = 10·exp(−n/2000), η = 0.3·exp(−n/2000), Forward → Backward → Apply through <see cref="StepEngine"/>
/// with the identity reduction: the code the trainer runs.
/// </summary>
internal sealed class StepBenchmark : IDisposable
{
    /// <summary>Forward + backward FLOPs of one sample of the paper's model on MNIST (multiply-add = 2).</summary>
    public const double ConvFlopsPerSample = 35.3e6;

    private readonly StepBenchmarkOptions options;
    private readonly IImageDataset data;
    private readonly BatchBuffer batch;
    private readonly float[] softCounts;
    private readonly float[] stats;
    private readonly SomSchedule schedule = new(10, 0.3, 2000, 0);
    private readonly int[] indices;

    public StepBenchmark(StepBenchmarkOptions options)
    {
        this.options = options;
        var (device, report) = TorchRuntime.Initialize(DeviceSpec.Parse("cpu"), options.Threads, Console.Error.WriteLine);
        Report = report;
        data = DatasetCatalog.Open("mnist", "train", DatasetCatalog.DefaultDataDir());
        // The paper's conv model and square 20x30 map by default: the model the PyTorch peer runs.
        var config = new DnmConfig
        {
            Encoder = EncoderKind.Conv, Lattice = LatticeKind.Rect, SigmaFloor = 0.3, BatchSize = options.Batch, Threads = options.Threads, Device = "cpu",
            MicroBatch = options.MicroBatch,
        };
        // --mlp: configs/mnist-mlp.json's model (the fully connected 500-500-2000 encoder, latent 10).
        if (options.Mlp) config = config with { Encoder = EncoderKind.Mlp, Latent = 10 };
        Engine = new StepEngine(config, data.Shape, device, options.Batch);
        // A dense layer costs 2 FLOPs per weight forward and 4 backward (input and weight gradients).
        FlopsPerSample = options.Mlp
            ? 6.0 * Engine.Parameters.Where(p => p.dim() == 2).Sum(p => (double)p.numel())
            : ConvFlopsPerSample;
        using (NewDisposeScope())
            Engine.Som.SetPrototypes(randn(new long[] { Engine.Som.Nodes, Engine.Som.Dim }, generator: new Generator(0)) * 0.1f);
        batch = new BatchBuffer(data.Shape, options.Batch);
        softCounts = new float[Engine.Layout.Nodes];
        stats = new float[Engine.Layout.Length];
        indices = new int[options.Batch];
    }

    public RuntimeReport Report { get; }
    /// <summary>Forward + backward FLOPs of one sample of the benchmarked model.</summary>
    public double FlopsPerSample { get; }
    public StepEngine Engine { get; }

    /// <summary>Phase times of one step, for --phases.</summary>
    public readonly record struct PhaseTimes(TimeSpan Fill, TimeSpan Forward, TimeSpan Backward, TimeSpan Apply);

    /// <summary>Runs step <paramref name="n"/> (0-based) and returns its loss and phase times.</summary>
    public (StepLoss Loss, PhaseTimes Times) Step(int n)
    {
        var b = options.Batch;
        var start = n * b % (data.Count / b * b);
        var t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < b; i++) indices[i] = start + i;
        batch.Fill(data, indices);
        var t1 = Stopwatch.GetTimestamp();
        var sched = new ScheduleValues(schedule.Sigma(n), schedule.Eta(n));
        StepLoss loss;
        long t2, t3;
        using (NewDisposeScope())
        {
            Engine.Forward(batch.FilledPixels, b, StepMode.Joint, softCounts);
            t2 = Stopwatch.GetTimestamp();
            Engine.Backward(softCounts, stats);
            t3 = Stopwatch.GetTimestamp();
            loss = Engine.Apply(stats, b, sched);
        }
        var t4 = Stopwatch.GetTimestamp();
        return (loss, new PhaseTimes(Stopwatch.GetElapsedTime(t0, t1), Stopwatch.GetElapsedTime(t1, t2),
            Stopwatch.GetElapsedTime(t2, t3), Stopwatch.GetElapsedTime(t3, t4)));
    }

    public int Run()
    {
        var loss0 = Step(0).Loss;
        for (int i = 1; i < options.Warmup; i++) Step(i);
        var phases = new List<PhaseTimes>();
        // CPU time next to wall time: on a shared machine wall time says how much of the cores this
        // process got, CPU time how much work a step took.
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var faults0 = ProcessMemory.MinorFaults();
        var sw = Stopwatch.StartNew();
        StepLoss lossN = default;
        for (int i = options.Warmup; i < options.Warmup + options.Steps; i++)
        {
            var (loss, times) = Step(i);
            lossN = loss;
            phases.Add(times);
        }
        var sec = sw.Elapsed.TotalSeconds;
        var faultsPerStep = (ProcessMemory.MinorFaults() - faults0) / (double)options.Steps;
        var cpuMsPerStep = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds / options.Steps;
        var samplesPerSecond = options.Steps * options.Batch / sec;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"impl=dnm-torchsharp threads={Engine.Threads} micro-batch={Engine.MicroBatches.MaxSize}x{Engine.Shards} mkldnn={(Report.MkldnnEnabled ? 1 : 0)} steps/s={options.Steps / sec:F3} " +
            $"samples/s={samplesPerSecond:F1} GFLOP/s={samplesPerSecond * FlopsPerSample / 1e9:F1} peakRSS_MB={ProcessMemory.PeakRssMB():F0} " +
            $"loss0={loss0.Total:F4} lossN={lossN.Total:F4} cpu_ms/step={cpuMsPerStep:F0} wall_ms/step={1000 * sec / options.Steps:F0} faults/step={faultsPerStep:F0}"));
        if (options.Phases)
        {
            double Ms(Func<PhaseTimes, TimeSpan> f) => Median(phases.Select(p => f(p).TotalMilliseconds));
            Console.WriteLine(FormattableString.Invariant(
                $"median ms/step: fill {Ms(p => p.Fill):F1}, forward {Ms(p => p.Forward):F1}, backward {Ms(p => p.Backward):F1}, apply {Ms(p => p.Apply):F1}"));
        }
        return 0;
    }

    internal static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    public void Dispose()
    {
        Engine.Dispose();
        data.Dispose();
    }
}

/// <summary>Resident set size of this process from /proc/self/status (Linux).</summary>
internal static class ProcessMemory
{
    public static double PeakRssMB() => StatusKiB("VmHWM:") / 1024.0;
    public static double RssMB() => StatusKiB("VmRSS:") / 1024.0;

    /// <summary>Minor page faults so far: memory the allocator handed back to the kernel and took again shows up here.</summary>
    public static long MinorFaults()
    {
        // /proc/self/stat: "pid (comm) state ..."; minflt is the 10th field, the 8th after the command.
        var stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], CultureInfo.InvariantCulture);
    }

    private static long StatusKiB(string key)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line.AsSpan(key.Length).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
        return -1;
    }
}
