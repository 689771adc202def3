using Dnm.Core.Telemetry;
using Dnm.Core.Training;

namespace Dnm.Node.Progress;

/// <summary>
/// Progress as plain log lines, for CI and Kubernetes logs (stdout not a terminal): a step line at the
/// start of each phase, at each epoch end and otherwise every <see cref="CliContext.LogInterval"/>;
/// one line per phase change, evaluation, checkpoint and message. Every line starts with the time since
/// start, and a line written inside a traced span ends with "trace=&lt;id&gt;", so logs lead to the trace.
/// </summary>
public sealed class LogProgress(TextWriter output, ProgressTracker tracker, TimeSpan interval) : ITrainingDisplay
{
    private TimeSpan? lastStepLine;
    // The phase this display is in, with its own start: at a phase change the tracker has already moved on.
    private TrainingPhase? phase;
    private TimeSpan phaseStartedAt;
    private int stepsInPhase;
    private long position;

    public void OnPhaseStarted(TrainingPhase started, int epochs, int stepsPerEpoch)
    {
        EndPhase();
        phase = started;
        phaseStartedAt = tracker.Elapsed;
        Line(ProgressText.PhaseStarted(started, epochs, stepsPerEpoch, tracker.Meter.TotalSteps));
    }

    public void OnStep(StepReport report)
    {
        stepsInPhase++;
        position = tracker.Meter.Position;
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
        var trace = StepTracer.CurrentTraceId() is { } id ? $" trace={id}" : "";
        lock (output) output.WriteLine($"{ProgressText.Stamp(tracker.Elapsed)} {text}{trace}");
    }

    public void Dispose() => EndPhase();

    private void EndPhase()
    {
        if (phase is not { } ended || stepsInPhase == 0) return;
        var seconds = (tracker.Elapsed - phaseStartedAt).TotalSeconds;
        Line($"phase {ProgressText.Phase(ended)} ended after {position} steps in {seconds:0.0} s");
        stepsInPhase = 0;
    }
}
