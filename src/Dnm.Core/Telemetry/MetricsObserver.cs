using Dnm.Core.Training;

namespace Dnm.Core.Telemetry;

/// <summary>
/// Feeds <see cref="DnmMetrics"/> from a run's events. Throughput and ETA come from the run's
/// <see cref="ProgressTracker"/>, the same object the console display reads.
/// </summary>
/// <param name="countStepSamples">False on a cluster's coordinator: its workers count the samples of each step, as
/// each processes them, so the sum over processes stays the samples processed (SOM pre-training, which runs on
/// the coordinator's replica, is still counted here).</param>
public sealed class MetricsObserver(DnmMetrics metrics, ProgressTracker progress, bool countStepSamples = true) : ITrainingObserver
{
    private volatile bool started;

    /// <summary>True once the engine is built and the first phase has begun: what /readyz reports.</summary>
    public bool Started => started;

    public void OnPhaseStarted(TrainingPhase phase, int epochs, int stepsPerEpoch)
    {
        started = true;
        metrics.SetProgress(progress.Meter.SamplesPerSecond, progress.Meter.Remaining);
    }

    public void OnStep(StepReport report)
    {
        if (countStepSamples || report.Phase == TrainingPhase.SomPretrain) metrics.RecordSamples(report.Samples);
        // A SOM pre-training report sums up to 100 cheap iterations that are not optimisation steps:
        // it counts samples, but its duration is not a step's.
        if (report.Phase != TrainingPhase.SomPretrain)
        {
            metrics.RecordStep(report.Duration, report.Timings);
            // A skipped step's loss is NaN or infinite: the gauges keep the last step that was applied.
            if (report.Loss.Skipped) metrics.RecordSkippedStep();
            else metrics.SetLoss(report.Loss);
        }
        if (!double.IsNaN(report.Sigma)) metrics.SetSchedule(report.Sigma, report.Eta);
        metrics.SetProgress(progress.Meter.SamplesPerSecond, progress.Meter.Remaining);
    }

    public void OnEvaluation(EvaluationReport report) => metrics.SetQuality(report.Quality);

    public void OnCheckpoint(string path, long bytes, TimeSpan duration) => metrics.RecordCheckpoint(bytes, duration);
}
