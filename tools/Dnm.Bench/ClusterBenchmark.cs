using System.Diagnostics;
using System.Globalization;
using Dnm.Cluster;
using Dnm.Cluster.Coordination;
using Dnm.Cluster.Hosting;
using Dnm.Cluster.Transport;
using Dnm.Core.Config;
using Dnm.Core.Runtime;
using Dnm.Core.Training;

namespace Dnm.Bench;

/// <summary>
/// `Dnm.Bench cluster`: the paper's model and map on MNIST, trained by the bare single-process Trainer and by the
/// embedded cluster (`dnm train --workers N`) for each N; reports the mean step time and the share of it spent in
/// the data-plane all-reduces (measured by the workers: sending, waiting for the slowest rank, receiving the sum), and
/// the part of it after the slowest rank's contribution reached the coordinator (the last sum and the broadcast).
/// </summary>
internal static class ClusterBenchmark
{
    private sealed class StepTimes(int warmup) : ITrainingObserver
    {
        private readonly List<double> ms = [];
        private readonly Stopwatch clock = Stopwatch.StartNew();
        // Between the reports of consecutive timed steps of one phase (the interval across a phase change holds SOM pre-training):
        // the wall time, the step and whatever runs between steps (1 / throughput), and the process's CPU time.
        private readonly List<double> intervals = [];
        private readonly List<double> cpuDeltas = [];
        private double lastReport, lastCpu;
        private TrainingPhase? lastPhase;

        public void OnStep(StepReport r)
        {
            if (r.Phase == TrainingPhase.SomPretrain) return;
            var used = Environment.CpuUsage.TotalTime.TotalMilliseconds;
            var now = clock.Elapsed.TotalMilliseconds;
            lock (ms)
            {
                ms.Add(r.Duration.TotalMilliseconds);
                if (ms.Count > warmup + 1 && r.Phase == lastPhase)
                {
                    intervals.Add(now - lastReport);
                    cpuDeltas.Add(used - lastCpu);
                }
                (lastReport, lastCpu, lastPhase) = (now, used, r.Phase);
            }
        }

        /// <summary>Wall milliseconds between timed steps: the step's own time and what runs between steps.</summary>
        public double Interval { get { lock (ms) return intervals.DefaultIfEmpty().Average(); } }

        /// <summary>
        /// The process's CPU milliseconds a timed step (every thread: the coordinator's and the workers' for a cluster): the cores a step
        /// used, which scheduling noise moves less than its wall time.
        /// </summary>
        public double CpuPerStep { get { lock (ms) return cpuDeltas.DefaultIfEmpty().Average(); } }

        // The first steps warm up (JIT, allocator, first connections): left out of the mean (--warmup, default 3).
        public double Mean { get { lock (ms) return ms.Skip(warmup).DefaultIfEmpty().Average(); } }
        // The mean of each quarter of the timed steps: whether the run was still warming up.
        public string Quarters
        {
            get
            {
                lock (ms)
                {
                    var timed = ms.Skip(warmup).ToArray();
                    var q = Math.Max(timed.Length / 4, 1);
                    return string.Join(" / ", Enumerable.Range(0, 4).Select(i => timed.Skip(i * q).Take(q).DefaultIfEmpty().Average().ToString("F1", CultureInfo.InvariantCulture)));
                }
            }
        }
        public int Count { get { lock (ms) return ms.Count; } }
    }

    public static async Task<int> RunAsync(string[] args)
    {
        string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        var workers = (Option("--workers") ?? "1,2,4").Split(',').Select(w => int.Parse(w, CultureInfo.InvariantCulture)).ToArray();
        var limit = int.Parse(Option("--limit") ?? "4096", CultureInfo.InvariantCulture);
        var batch = int.Parse(Option("--batch-size") ?? "256", CultureInfo.InvariantCulture);
        var threads = int.Parse(Option("--threads") ?? "1", CultureInfo.InvariantCulture);
        // --bare-threads T: the single process's threads (default: --threads). Equal total cores: T = N x --threads.
        var bareThreads = int.Parse(Option("--bare-threads") ?? threads.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        var microBatch = int.Parse(Option("--micro-batch") ?? "0", CultureInfo.InvariantCulture);
        var warmup = int.Parse(Option("--warmup") ?? "3", CultureInfo.InvariantCulture);
        // --reduction workers,star: each N with each way of summing the statistics (docs/cluster.md, "Scaling model").
        var reductions = (Option("--reduction") ?? "workers").Split(',').Select(r => KebabEnum.TryParse<StatisticsReduction>(r.Trim(), out var reduction)
            ? reduction
            : throw new ArgumentException($"--reduction '{r}': auto, workers or star")).ToArray();
        // --shared-memory 0: every data-plane payload over loopback TCP, as before the shared-memory path.
        var dataPlane = DataPlaneOptions.Default with
        {
            SharedMemoryBytes = int.Parse(Option("--shared-memory") ?? DataPlaneOptions.Default.SharedMemoryBytes.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
        };
        var root = Directory.CreateTempSubdirectory("dnm-bench-cluster-").FullName;
        var config = new DnmConfig
        {
            // The paper's conv model on the square lattice, unsmoothed: the set-up of the recorded cluster figures.
            Encoder = EncoderKind.Conv, Lattice = Core.Som.LatticeKind.Rect, SigmaFloor = 0.3, SmoothWeight = 0,
            Dataset = "mnist", Limit = limit, BatchSize = batch, PretrainEpochs = 1, Epochs = 1, SomIterations = 100, Threads = threads,
            Device = "cpu", EvalEvery = 0, CheckpointEvery = 1_000_000, CheckpointMinutes = 0, MicroBatch = microBatch,
        };
        // --mlp: configs/mnist-mlp.json's model (the fully connected 500-500-2000 encoder, latent 10).
        if (args.Contains("--mlp")) config = config with { Encoder = EncoderKind.Mlp, Latent = 10 };
        var (device, _) = TorchRuntime.Initialize(DeviceSpec.Parse("cpu"), threads);
        var model = config.Encoder == EncoderKind.Mlp ? $"mlp {string.Join('-', config.Hidden)}/{config.Latent}" : $"conv {string.Join('-', config.Channels)}/{config.Latent}";
        Console.WriteLine($"MNIST, first {limit} samples, batch {batch} (micro-batch {(microBatch > 0 ? microBatch : "auto")}), map {config.Map}, model {model}; " +
                          $"{threads} torch thread(s) a worker, {bareThreads} in the bare Trainer; data plane {(dataPlane.SharedMemoryBytes > 0 ? $"shared memory ({dataPlane.SharedMemoryBytes} B) or TCP" : "TCP only")}; " +
                          $"{Environment.ProcessorCount} cores, load average {LoadAverage()}");

        // --repeat R: R rounds, each the bare Trainer and every N (order alternating), so each ratio compares runs minutes apart at most;
        // the summary gives the medians (the machine's load moves single runs by more than the overhead measured).
        var rounds = int.Parse(Option("--repeat") ?? "1", CultureInfo.InvariantCulture);
        var runs = workers.SelectMany(n => reductions.Select(r => (N: n, Reduction: r))).ToArray();
        var ratios = runs.ToDictionary(n => n, _ => new List<double>());
        var shares = runs.ToDictionary(n => n, _ => new List<double>());
        var transfers = runs.ToDictionary(n => n, _ => new List<double>());
        StepTimes RunBare(int round)
        {
            var bare = new StepTimes(warmup);
            var sw = Stopwatch.StartNew();
            var single = config with { Out = Path.Combine(root, $"single{round}"), Threads = bareThreads };
            using (var train = TrainingRun.OpenTrain(single with { Limit = limit }, null))
            using (var trainer = new Trainer(single, train, train, device, new RunDirectory(single.Out), bare))
                trainer.Run(CancellationToken.None);
            Console.WriteLine($"bare Trainer:   {bare.Count} steps, {bare.Mean,7:F1} ms a step (by quarter {bare.Quarters}; {bare.Interval:F1} ms between reports; CPU {bare.CpuPerStep:F1} ms a step; {sw.Elapsed.TotalSeconds:F1} s with SOM pre-training)");
            return bare;
        }
        for (var round = 1; round <= rounds; round++)
        {
            if (rounds > 1) Console.WriteLine($"round {round} of {rounds} (load average {LoadAverage()})");
            // Even rounds run the cluster first: alternating the order cancels a drift of the machine's speed
            // within a session (seen: the bare step moving 132 -> 181 ms on identical code), which a fixed
            // order would count as overhead or as gain.
            var bareFirst = round % 2 == 1;
            StepTimes? bare = null;
            if (bareFirst) bare = RunBare(round);
            var clusterRuns = new List<((int N, StatisticsReduction Reduction) Run, StepTimes Times, ClusterRunResult Result, string Link)>();
            foreach (var run in runs)
            {
                var (n, reduction) = run;
                var times = new StepTimes(warmup);
                using var profile = new WorkerPhaseProfile();
                var result = await ClusterTraining.RunEmbeddedAsync(config with { Out = Path.Combine(root, $"w{n}-{reduction}-{round}") }, n, times, CancellationToken.None,
                    new NodeOptions { ChecksumEvery = 0, DataPlane = dataPlane, Reduction = reduction }, telemetry: profile.Telemetry);
                clusterRuns.Add((run, times, result, profile.CoordinatorLink(times.Count)));
                Console.WriteLine($"--workers {n} --reduction {Name(reduction)} profile, mean ms per worker step: {profile.Describe()}");
            }
            bare ??= RunBare(round);
            foreach (var (run, times, result, link) in clusterRuns)
            {
                var reduce = result.MeanReduce.TotalMilliseconds;
                var share = reduce / result.MeanStep.TotalMilliseconds;
                var transfer = result.MeanTransfer.TotalMilliseconds;
                ratios[run].Add(times.Mean / bare.Mean);
                shares[run].Add(share);
                transfers[run].Add(transfer / result.MeanStep.TotalMilliseconds);
                Console.WriteLine($"--workers {run.N} --reduction {Name(run.Reduction)}: {times.Count} steps, {times.Mean,7:F1} ms a step (by quarter {times.Quarters}; {times.Interval:F1} ms between reports, {times.Interval / bare.Interval:F2}x the bare's; CPU {times.CpuPerStep:F1} ms a step, {times.CpuPerStep / bare.CpuPerStep:F2}x the bare's), all-reduce {reduce,6:F1} ms " +
                                  $"({100 * share:F0} % of the step; after the slowest rank {transfer:F1} ms, {100 * transfer / result.MeanStep.TotalMilliseconds:F1} %); " +
                                  $"vs bare {times.Mean / bare.Mean:F2}x; coordinator's link {link}");
            }
        }
        if (rounds > 1)
            foreach (var run in runs)
                Console.WriteLine($"median over {rounds} rounds, --workers {run.N} --reduction {Name(run.Reduction)}: step time {Median(ratios[run]):F3}x the bare Trainer's " +
                                  $"({1 / Median(ratios[run]):F3}x its samples/s), all-reduce {100 * Median(shares[run]):F1} % of the step, " +
                                  $"after the slowest rank {100 * Median(transfers[run]):F1} %");
        Directory.Delete(root, recursive: true);
        return 0;
    }

    /// <summary>
    /// The workers' own phase timings (encode, soft_count_reduce, backward, gradient_reduce, apply, som_update), from the
    /// same dnm_train_phase_duration_seconds histogram /metrics exports: where a worker's step goes.
    /// </summary>
    private sealed class WorkerPhaseProfile : IDisposable
    {
        private readonly object scope = new();
        private readonly System.Diagnostics.Metrics.MeterListener listener = new();
        private readonly Dictionary<string, (double Sum, long Count)> phases = new();
        private readonly List<Dnm.Core.Telemetry.DnmMetrics> metrics = [];

        public WorkerPhaseProfile()
        {
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter.Scope, scope) && instrument.Name is "dnm_train_phase_duration_seconds" or "dnm_allreduce_bytes_total")
                    l.EnableMeasurementEvents(instrument);
            };
            listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                string? role = null, direction = null;
                foreach (var tag in tags)
                {
                    if (tag.Key == "role") role = tag.Value?.ToString();
                    if (tag.Key == "direction") direction = tag.Value?.ToString();
                }
                if (instrument.Name != "dnm_allreduce_bytes_total" || role != ClusterTelemetry.CoordinatorRole) return;
                lock (phases)
                {
                    if (direction == "sent") coordinatorSent += value;
                    else coordinatorReceived += value;
                }
            });
            listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
            {
                string? phase = null;
                foreach (var tag in tags) if (tag.Key == "phase") phase = tag.Value?.ToString();
                if (phase is null) return;
                lock (phases) phases[phase] = phases.TryGetValue(phase, out var p) ? (p.Sum + value, p.Count + 1) : (value, 1);
            });
            listener.Start();
            coordinator = new Dnm.Core.Telemetry.DnmMetrics(new Dnm.Core.Telemetry.TelemetryIdentity(ClusterTelemetry.CoordinatorRole, 0, "cpu"),
                scope: scope, publishZeros: false);
            Telemetry = new ClusterTelemetry(coordinator, id =>
            {
                var m = new Dnm.Core.Telemetry.DnmMetrics(id, scope: scope, publishZeros: false);
                lock (metrics) metrics.Add(m);
                return m;
            }, null);
        }

        public ClusterTelemetry Telemetry { get; }

        private readonly Dnm.Core.Telemetry.DnmMetrics coordinator;
        private long coordinatorSent, coordinatorReceived;

        /// <summary>The coordinator's data-plane bytes (state transfers included), in all and per step.</summary>
        public string CoordinatorLink(int steps)
        {
            lock (phases)
                return $"{coordinatorReceived / 1e6:F1} MB in, {coordinatorSent / 1e6:F1} MB out " +
                       $"({coordinatorReceived / 1e6 / Math.Max(steps, 1):F2} + {coordinatorSent / 1e6 / Math.Max(steps, 1):F2} MB a step)";
        }

        public string Describe()
        {
            lock (phases)
                return string.Join(", ", phases.Where(p => p.Value.Sum > 0)
                    .Select(p => $"{p.Key} {1000 * p.Value.Sum / Math.Max(1, p.Value.Count):F1}"));
        }

        public void Dispose()
        {
            listener.Dispose();
            coordinator.Dispose();
            foreach (var m in metrics) m.Dispose();
        }
    }

    private static string Name(StatisticsReduction reduction) => KebabEnum.Name(reduction);

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
