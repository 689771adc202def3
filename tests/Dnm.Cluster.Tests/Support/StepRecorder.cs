using Dnm.Core.Training;

namespace Dnm.Cluster.Tests.Support;

/// <summary>
/// Records, per global step, the global sums a run applied (<see cref="ITrainingObserver.OnStepReduced"/>), the
/// reported loss, and (where <paramref name="keep"/> says so) the state of each checkpoint as it is written. The
/// Trainer and the coordinator's replica both report these, so one recorder serves either side of a comparison.
/// </summary>
/// <param name="keep">Which checkpoints to load (they are read when written: the run prunes all but three).</param>
internal sealed class StepRecorder(Func<RunState, bool>? keep = null) : ITrainingObserver
{
    private readonly Lock gate = new();
    private readonly Dictionary<long, ReducedStep> reduced = new();
    private readonly Dictionary<long, StepReport> reports = new();
    private readonly List<Checkpoint> checkpoints = [];

    public void OnStepReduced(long globalStep, ReadOnlySpan<float> softCounts, ReadOnlySpan<float> statistics)
    {
        var step = new ReducedStep(softCounts.ToArray(), statistics.ToArray());
        lock (gate) reduced[globalStep] = step;
    }

    public void OnStep(StepReport report)
    {
        lock (gate) reports[report.GlobalStep] = report;
    }

    public void OnCheckpoint(string path, long bytes, TimeSpan duration)
    {
        if (keep is null) return;
        var checkpoint = Checkpoint.Load(path);
        if (!keep(checkpoint.State)) return;
        lock (gate) checkpoints.Add(checkpoint);
    }

    public ReducedStep Reduced(long globalStep) { lock (gate) return reduced[globalStep]; }
    public StepReport Report(long globalStep) { lock (gate) return reports[globalStep]; }
    public StepLoss Loss(long globalStep) => Report(globalStep).Loss;
    public int StepCount { get { lock (gate) return reports.Count; } }

    /// <summary>The last kept checkpoint written after <paramref name="globalStep"/> (an epoch's end writes two with the same tensors).</summary>
    public Checkpoint After(long globalStep) { lock (gate) return checkpoints.Last(c => c.State.GlobalStep == globalStep); }

    public Checkpoint First(Func<RunState, bool> where) { lock (gate) return checkpoints.First(c => where(c.State)); }
}

/// <summary>The global soft counts (empty in autoencoder steps) and statistics of one step.</summary>
internal sealed record ReducedStep(float[] SoftCounts, float[] Statistics);

/// <summary>
/// Norm-relative differences ‖a − b‖ / ‖b‖ (in double) between two replica states and between two steps' reduced sums,
/// grouped as the algorithm names them: θ and φ, W, Adam's first and second moments; gradients, S (BMU z-sums),
/// soft counts f and the loss sums. BMU counts are integers, so they are compared exactly (a BMU that rounding
/// flipped to another node shows as mismatched nodes).
/// </summary>
internal sealed record StateDiff(double Parameters, double Prototypes, double FirstMoments, double SecondMoments, string Worst)
{
    public double Max => Math.Max(Math.Max(Parameters, Prototypes), Math.Max(FirstMoments, SecondMoments));

    public static StateDiff Between(Checkpoint actual, Checkpoint expected)
    {
        var byName = actual.Tensors.ToDictionary(t => t.Name);
        double param = 0, w = 0, m = 0, v = 0, worst = 0;
        var worstName = "";
        foreach (var e in expected.Tensors)
        {
            var rel = Relative(byName[e.Name].Data, e.Data);
            if (rel > worst) (worst, worstName) = (rel, e.Name);
            if (e.Name.StartsWith("adam.m/", StringComparison.Ordinal)) m = Math.Max(m, rel);
            else if (e.Name.StartsWith("adam.v/", StringComparison.Ordinal)) v = Math.Max(v, rel);
            else if (e.Name.StartsWith("som/", StringComparison.Ordinal)) w = Math.Max(w, rel);
            else param = Math.Max(param, rel);
        }
        return new StateDiff(param, w, m, v, worstName);
    }

    public override string ToString() =>
        $"θφ {Parameters:E2}, W {Prototypes:E2}, Adam m {FirstMoments:E2}, v {SecondMoments:E2} (worst {Worst})";

    public static double Relative(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            var d = actual[i] - (double)expected[i];
            diff += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return diff == 0 ? 0 : Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-30);
    }
}

/// <summary>How one step's reduced sums differ from the reference's (see <see cref="StateDiff"/>).</summary>
internal sealed record ReducedDiff(double Gradients, double BmuSums, int BmuCountMismatches, double SoftCounts, double KlSum, double SquaredErrorSum,
    float Samples, float ExpectedSamples)
{
    public double Max => new[] { Gradients, BmuSums, SoftCounts, KlSum, SquaredErrorSum }.Max();

    public static ReducedDiff Between(ReducedStep actual, ReducedStep expected, StepLayout layout)
    {
        ReadOnlySpan<float> a = actual.Statistics, e = expected.Statistics;
        var mismatches = 0;
        for (int j = 0; j < layout.Nodes; j++)
            if (a[layout.BmuCountsOffset + j] != e[layout.BmuCountsOffset + j]) mismatches++;
        return new ReducedDiff(
            StateDiff.Relative(a.Slice(layout.GradientOffset, layout.Parameters), e.Slice(layout.GradientOffset, layout.Parameters)),
            StateDiff.Relative(a.Slice(layout.BmuSumsOffset, layout.Nodes * layout.Latent), e.Slice(layout.BmuSumsOffset, layout.Nodes * layout.Latent)),
            mismatches,
            StateDiff.Relative(actual.SoftCounts, expected.SoftCounts),
            StateDiff.Relative(a.Slice(layout.KlSumIndex, 1), e.Slice(layout.KlSumIndex, 1)),
            StateDiff.Relative(a.Slice(layout.SquaredErrorSumIndex, 1), e.Slice(layout.SquaredErrorSumIndex, 1)),
            a[layout.SampleCountIndex], e[layout.SampleCountIndex]);
    }

    public override string ToString() =>
        $"∇ {Gradients:E2}, S {BmuSums:E2}, BMU counts differing at {BmuCountMismatches} node(s), f {SoftCounts:E2}, " +
        $"KL sum {KlSum:E2}, squared-error sum {SquaredErrorSum:E2}, samples {Samples}/{ExpectedSamples}";
}
