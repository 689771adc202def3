using Dnm.Core.Config;
using Dnm.Core.Training;

namespace Dnm.Node.Progress;

/// <summary>Where the run is (phase, last step) and how fast it goes, fed by the observer callbacks.</summary>
public sealed class ProgressTracker(DnmConfig config, TimeProvider clock)
{
    private readonly long started = clock.GetTimestamp();

    public ThroughputMeter Meter { get; } = new();
    public TrainingPhase? Phase { get; private set; }
    public StepReport? Last { get; private set; }
    public TimeSpan Elapsed => clock.GetElapsedTime(started);

    /// <summary>Returns the steps in the phase: epochs x steps, but SOM pre-training counts iterations.</summary>
    public long PhaseStarted(TrainingPhase phase, int epochs, int stepsPerEpoch)
    {
        var total = phase == TrainingPhase.SomPretrain ? config.SomIterations : (long)epochs * stepsPerEpoch;
        Phase = phase;
        Last = null;
        Meter.Start(total);
        return total;
    }

    public void Step(StepReport r)
    {
        Last = r;
        Meter.Record(Elapsed, r.Samples, (long)r.Epoch * r.StepsPerEpoch + r.StepInEpoch);
    }

    /// <summary>The last step of an epoch, or of the phase: worth a log line of its own.</summary>
    public bool IsMilestone(StepReport r) =>
        r.Phase == TrainingPhase.SomPretrain ? Meter.Position >= Meter.TotalSteps : r.StepInEpoch == r.StepsPerEpoch;
}
