using Dnm.Core.Config;
using Dnm.Core.Training;

namespace Dnm.Node.Progress;

/// <summary>
/// Progress as plain log lines, for CI and Kubernetes logs (stdout not a terminal): a step line at the
/// start of each phase, at each epoch end and otherwise every <see cref="CliContext.LogInterval"/>;
/// one line per phase change, evaluation, checkpoint and message. Every line starts with the time since start.
/// </summary>
public sealed class LogProgress : ITrainingDisplay
{
    private readonly TextWriter output;
    private readonly ProgressTracker tracker;
    private readonly TimeSpan interval;
    private readonly TimeProvider clock;
    private TimeSpan? lastStepLine;
    private long phaseStartedAt;
    private int stepsInPhase;

    public LogProgress(TextWriter output, DnmConfig config, TimeProvider clock, TimeSpan interval)
    {
        this.output = output;
        this.interval = interval;
        this.clock = clock;
        tracker = new ProgressTracker(config, clock);
    }

    public void OnPhaseStarted(TrainingPhase phase, int epochs, int stepsPerEpoch)
    {
        EndPhase();
        var total = tracker.PhaseStarted(phase, epochs, stepsPerEpoch);
        phaseStartedAt = clock.GetTimestamp();
        stepsInPhase = 0;
        Line(ProgressText.PhaseStarted(phase, epochs, stepsPerEpoch, total));
    }

    public void OnStep(StepReport report)
    {
        tracker.Step(report);
        stepsInPhase++;
        var now = tracker.Elapsed;
        if (stepsInPhase == 1 || tracker.IsMilestone(report) || lastStepLine is not { } last || now - last >= interval)
        {
            lastStepLine = now;
            Line(ProgressText.Status(report, tracker.Meter));
        }
    }

    public void OnEvaluation(EvaluationReport report)
    {
        // The final evaluation comes after the last phase: close that phase first, so the log reads in order.
        if (report.Phase == TrainingPhase.Done) EndPhase();
        Line(ProgressText.Evaluation(report));
    }

    public void OnCheckpoint(string path, long bytes, TimeSpan duration) => Line(ProgressText.Checkpoint(path, bytes, duration));

    public void OnMessage(string message) => Line(message);

    public void Line(string text)
    {
        lock (output) output.WriteLine($"{ProgressText.Stamp(tracker.Elapsed)} {text}");
    }

    public void Dispose() => EndPhase();

    private void EndPhase()
    {
        if (tracker.Phase is not { } phase || stepsInPhase == 0) return;
        var seconds = clock.GetElapsedTime(phaseStartedAt).TotalSeconds;
        Line($"phase {ProgressText.Phase(phase)} ended after {tracker.Meter.Position} steps in {seconds:0.0} s");
        stepsInPhase = 0;
    }
}
