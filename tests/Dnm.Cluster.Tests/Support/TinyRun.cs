using System.Buffers.Binary;
using Dnm.Core.Config;
using Dnm.Core.Som;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Support;

/// <summary>A tiny synthetic IDX dataset and a run config small enough for multi-worker specs on two cores.</summary>
internal static class TinyRun
{
    /// <summary>Writes 12×12 Gaussian blobs (four positions, one per label) as IDX files; returns the dataset spec.</summary>
    public static string WriteDataset(string dir, int count = 72, int seed = 1)
    {
        var rng = new Random(seed);
        var centres = new (int X, int Y)[] { (3, 3), (8, 3), (3, 8), (8, 8) };
        var pixels = new byte[count * 144];
        var labels = new byte[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = (byte)(i % 4);
            // Continuous jitter and pixel noise: no two images (so no two seeded prototypes) are equal, so
            // no BMU is an exact tie that float rounding could break either way.
            var cx = centres[labels[i]].X + (float)(rng.NextDouble() * 2 - 1);
            var cy = centres[labels[i]].Y + (float)(rng.NextDouble() * 2 - 1);
            for (int y = 0; y < 12; y++)
                for (int x = 0; x < 12; x++)
                {
                    var v = 230 * MathF.Exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 4f) + rng.Next(0, 25);
                    pixels[i * 144 + y * 12 + x] = (byte)Math.Clamp(v, 0, 255);
                }
        }
        var images = Path.Combine(dir, "images.idx");
        var labelsPath = Path.Combine(dir, "labels.idx");
        File.WriteAllBytes(images, Idx(0x803, [count, 12, 12], pixels));
        File.WriteAllBytes(labelsPath, Idx(0x801, [count], labels));
        return $"idx:{images},{labelsPath}";
    }

    private static byte[] Idx(int magic, int[] dims, byte[] data)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int d = 0; d < dims.Length; d++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * d), dims[d]);
        data.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    /// <summary>
    /// 72 samples, batch 12: 6 steps per epoch, 2 pre-training and 3 joint epochs (30 steps), 20 SOM iterations,
    /// the default γ = 1. The minibatch Kohonen rule unless a spec asks for the batch rule.
    /// Caveat: the autoencoder is barely trained after 12 steps, so the map ends with most samples on one node
    /// (purity 0.25); StepEquivalenceSpec checks one step from a well-spread state instead.
    /// </summary>
    public static DnmConfig Config(string dataset, string outDir, string somRule = "minibatch") => new()
    {
        SomRule = KebabEnum.Parse<Core.Som.SomRule>("som-rule", somRule),
        // Micro-batches of 3: a batch of 12 is 4 of them, so worlds of 2, 3 and 4 all split it.
        // The conv model on the square lattice, σ floor 0.3 and no smoothing: the set-up these specs were measured with.
        Encoder = EncoderKind.Conv, Lattice = LatticeKind.Rect, SigmaFloor = 0.3, SmoothWeight = 0,
        Dataset = dataset, Channels = [4, 4, 2], Kernel = 3, Latent = 8, Map = "3x4", BatchSize = 12, MicroBatch = 3, PretrainEpochs = 2,
        SomIterations = 20, Epochs = 3, Alpha = 10, Sigma0 = 1.5, Seed = 7, Threads = 1, CheckpointEvery = 7, Device = "cpu",
        Out = outDir, EvalEvery = 0,
    };

    /// <summary>
    /// The single-process reference: `dnm train`'s own run (<see cref="TrainingRun.Execute"/>) on the same data and
    /// config, final evaluation, final-metrics.json and final.ckpt included. Returns its final state.
    /// </summary>
    public static Checkpoint TrainSingleProcess(DnmConfig config)
    {
        TrainingRun.Execute(config, TorchSharp.torch.CPU, null, new NoObserver(), null, CancellationToken.None);
        return Final(config);
    }

    /// <summary>
    /// The final evaluation of a checkpoint as the run's end writes it (final-metrics.json): node labels from the whole
    /// training split, quality on the whole test split.
    /// </summary>
    public static Core.Evaluation.MapQuality FinalQuality(Checkpoint checkpoint)
    {
        using var map = Core.Evaluation.TrainedMap.From(checkpoint, "reference", TorchSharp.torch.CPU);
        using var train = TrainingRun.OpenTrain(checkpoint.Config with { Limit = null }, null);
        using var test = TrainingRun.OpenEvaluation(checkpoint.Config, null).Data;
        return map.Evaluate(train, test, CancellationToken.None);
    }

    /// <summary>
    /// What "ends elsewhere" means for a run that should differ (another option, another seed): some tensor of θ, φ or W
    /// at least this far from the other run's, relative to its norm. Equal runs are compared bitwise instead.
    /// </summary>
    public const double Different = 1e-3;

    /// <summary>
    /// Asserts that <paramref name="actual"/> holds <paramref name="expected"/>'s state to the bit: every tensor (θ, φ, Adam's
    /// moments, W, the smoothed targets), Adam's step count and the run state. N workers compute fixed micro-batches and
    /// sum them in one fixed tree, so a run of any world size ends exactly where the single process does.
    /// </summary>
    public static void AssertBitwiseEqual(Checkpoint actual, Checkpoint expected, ITestOutputHelper output, string what)
    {
        var (error, worst) = MaxRelativeError(actual, expected);
        output.WriteLine($"{what}: max relative error {error:E2} ({worst})");
        Assert.Equal(expected.State, actual.State);
        Assert.Equal(expected.AdamSteps, actual.AdamSteps);
        Assert.Equal(expected.Tensors.Select(t => t.Name), actual.Tensors.Select(t => t.Name));
        foreach (var (a, e) in actual.Tensors.Zip(expected.Tensors))
            Assert.True(a.Data.AsSpan().SequenceEqual(e.Data), $"{what}: {a.Name} differs (max relative error {error:E2} in {worst})");
    }

    /// <summary>The final checkpoint a run with <paramref name="config"/> wrote.</summary>
    /// <summary>
    /// A tiny run for node processes: trained once in this process (<paramref name="Reference"/>, in single/), and its
    /// config for the cluster (out: cluster/) written to <paramref name="ConfigFile"/>, with the coordinator's port and seeds.
    /// </summary>
    public sealed record ProcessRun(DnmConfig Single, Checkpoint Reference, DnmConfig Config, string ConfigFile, int Port, string Seeds)
    {
        /// <summary>Every process ended where the single process ended: the final checkpoint's tensors and final-metrics.json.</summary>
        public void AssertEndsAsTheSingleProcess(ITestOutputHelper output, string what)
        {
            AssertBitwiseEqual(Final(Config), Reference, output, what);
            Assert.Equal(File.ReadAllText(Path.Combine(Single.Out, "final-metrics.json")), File.ReadAllText(Path.Combine(Config.Out, "final-metrics.json")));
        }
    }

    /// <param name="epochs">Joint epochs (6 steps each; 3 unless a spec needs the run to outlast something it does mid-run).</param>
    public static ProcessRun ForProcesses(TempDir dir, int epochs = 3)
    {
        var dataset = WriteDataset(dir.Path);
        var single = Config(dataset, dir.Sub("single")) with { Epochs = epochs };
        var reference = TrainSingleProcess(single);
        var config = single with { Out = dir.Sub("cluster") };
        var configFile = dir.Sub("run.json");
        File.WriteAllText(configFile, config.ToJson());
        var port = Dnm.Tests.Shared.TestPorts.Next();
        return new ProcessRun(single, reference, config, configFile, port, $"127.0.0.1:{port}");
    }

    public static Checkpoint Final(DnmConfig config) => Checkpoint.Load(Path.Combine(config.Out, "checkpoints", "final.ckpt"));

    /// <summary>Largest relative difference of θ, φ and W between two checkpoints, without asserting.</summary>
    public static double MaxRelativeDifference(Checkpoint actual, Checkpoint expected) => MaxRelativeError(actual, expected).Error;

    /// <summary>Largest relative error ‖a − b‖ / ‖b‖ over θ, φ and W (Adam moments are compared by the checksum specs).</summary>
    private static (double Error, string Worst) MaxRelativeError(Checkpoint actual, Checkpoint expected)
    {
        var worst = (Error: 0.0, Name: "");
        var byName = actual.Tensors.ToDictionary(t => t.Name);
        foreach (var e in expected.Tensors.Where(t => !t.Name.StartsWith("adam", StringComparison.Ordinal)))
        {
            var rel = StateDiff.Relative(byName[e.Name].Data, e.Data);
            if (rel > worst.Error) worst = (rel, e.Name);
        }
        return worst;
    }
}

internal sealed class NoObserver : ITrainingObserver;

/// <summary>Collects what a run reports, thread-safely (the coordinator and the replica threads both report).</summary>
internal sealed class RecordingObserver : ITrainingObserver
{
    private readonly List<StepReport> steps = [];
    private readonly List<string> messages = [];

    public Action<StepReport>? OnStepHook { get; init; }

    public void OnStep(StepReport report)
    {
        lock (steps) steps.Add(report);
        OnStepHook?.Invoke(report);
    }

    public void OnMessage(string message)
    {
        lock (messages) messages.Add(message);
    }

    public IReadOnlyList<StepReport> Steps { get { lock (steps) return steps.ToArray(); } }
    public IReadOnlyList<string> Messages { get { lock (messages) return messages.ToArray(); } }
}

/// <summary>A fresh temporary folder, deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("dnm-cluster-").FullName;
    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } // a child process may still hold a file
    }
}
