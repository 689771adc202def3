namespace Dnm.Core.Training;

/// <summary>
/// One finished optimisation step (or SOM pre-training iterations), for progress and metrics.
/// <see cref="Timings"/> splits an optimisation step into its phases; null where nobody timed them.
/// </summary>
public sealed record StepReport(
    TrainingPhase Phase,
    int Epoch,
    int Epochs,
    int StepInEpoch,
    int StepsPerEpoch,
    long GlobalStep,
    int Samples,
    StepLoss Loss,
    double Sigma,
    double Eta,
    TimeSpan Duration,
    Telemetry.StepTimings? Timings = null);

/// <summary>An evaluation of the map on held-out data.</summary>
public sealed record EvaluationReport(TrainingPhase Phase, int Epoch, long GlobalStep, Evaluation.MapQuality Quality, int Samples, TimeSpan Duration);

/// <summary>Receives what a run does. The console display and the metrics exporter both implement it.</summary>
public interface ITrainingObserver
{
    void OnPhaseStarted(TrainingPhase phase, int epochs, int stepsPerEpoch) { }
    void OnStep(StepReport report) { }
    void OnEvaluation(EvaluationReport report) { }
    void OnCheckpoint(string path, long bytes, TimeSpan duration) { }
    void OnMessage(string message) { }

    /// <summary>
    /// Step <paramref name="globalStep"/> (numbered as in <see cref="StepReport.GlobalStep"/>) is about to apply these
    /// global sums: the soft counts f (empty in autoencoder steps) and the statistics (<see cref="StepLayout"/>). In a
    /// cluster run the coordinator's replica reports the reduced sums every replica applies; the Trainer reports its own.
    /// For equivalence checks and debugging; the spans are valid only during the call.
    /// </summary>
    void OnStepReduced(long globalStep, ReadOnlySpan<float> softCounts, ReadOnlySpan<float> statistics) { }
}

/// <summary>Fans one event out to several observers.</summary>
public sealed class CompositeObserver(params ITrainingObserver[] observers) : ITrainingObserver
{
    public void OnPhaseStarted(TrainingPhase phase, int epochs, int stepsPerEpoch) { foreach (var o in observers) o.OnPhaseStarted(phase, epochs, stepsPerEpoch); }
    public void OnStep(StepReport report) { foreach (var o in observers) o.OnStep(report); }
    public void OnEvaluation(EvaluationReport report) { foreach (var o in observers) o.OnEvaluation(report); }
    public void OnCheckpoint(string path, long bytes, TimeSpan duration) { foreach (var o in observers) o.OnCheckpoint(path, bytes, duration); }
    public void OnMessage(string message) { foreach (var o in observers) o.OnMessage(message); }
    public void OnStepReduced(long globalStep, ReadOnlySpan<float> softCounts, ReadOnlySpan<float> statistics) { foreach (var o in observers) o.OnStepReduced(globalStep, softCounts, statistics); }
}
