using Dnm.Core.Config;

namespace Dnm.Core.Training;

/// <summary>
/// Where the run is (phase, last step) and how fast it goes. One instance per run is the single source
/// of the throughput and ETA that the console prints and the metrics publish, so the two always agree.
/// It must come first among a run's observers: the others read it in the same callback.
/// </summary>
public sealed class ProgressTracker(DnmConfig config, TimeProvider clock) : ITrainingObserver
{
    private readonly long started = clock.GetTimestamp();

    public ThroughputMeter Meter { get; } = new();
    public TrainingPhase? Phase { get; private set; }
    public StepReport? Last { get; private set; }
    public TimeSpan Elapsed => clock.GetElapsedTime(started);

    /// <summary>Steps in the phase: epochs x steps, but SOM pre-training counts iterations.</summary>
    public void OnPhaseStarted(TrainingPhase phase, int epochs, int stepsPerEpoch)
    {
        var total = phase == TrainingPhase.SomPretrain ? config.SomIterations : (long)epochs * stepsPerEpoch;
        Phase = phase;
        Last = null;
        Meter.Start(total);
    }

    public void OnStep(StepReport r)
    {
        Last = r;
        Meter.Record(Elapsed, r.Samples, (long)r.Epoch * r.StepsPerEpoch + r.StepInEpoch);
    }

    /// <summary>The last step of an epoch, or of the phase: worth a log line of its own.</summary>
    public bool IsMilestone(StepReport r) =>
        r.Phase == TrainingPhase.SomPretrain ? Meter.Position >= Meter.TotalSteps : r.StepInEpoch == r.StepsPerEpoch;
}
