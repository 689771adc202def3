using Dnm.Core.Training;

namespace Dnm.Node.Progress;

/// <summary>
/// Progress on an interactive terminal: one status line redrawn in place with '\r' (at most ten times a
/// second), with a bar for the phase. Events that matter later (phase ends, evaluations, checkpoints,
/// messages) are printed as ordinary lines above it, so the scrollback keeps them.
/// </summary>
public sealed class LiveProgress : ITrainingDisplay
{
    private const string ClearLine = "\r\u001b[K";
    private static readonly TimeSpan RedrawEvery = TimeSpan.FromMilliseconds(100);
    private readonly TextWriter output;
    private readonly ProgressTracker tracker;
    private readonly Func<int> width;
    private TimeSpan? lastDraw;
    private string? status;

    public LiveProgress(TextWriter output, ProgressTracker tracker, Func<int> width)
    {
        this.output = output;
        this.tracker = tracker;
        this.width = width;
    }

    public void OnPhaseStarted(TrainingPhase phase, int epochs, int stepsPerEpoch)
    {
        lock (output)
        {
            // The finished phase's last status stays on screen as its summary.
            if (status is not null) output.Write('\n');
            status = null;
            output.WriteLine(Stamped(ProgressText.PhaseStarted(phase, epochs, stepsPerEpoch, tracker.Meter.TotalSteps)));
        }
    }

    public void OnStep(StepReport report)
    {
        var now = tracker.Elapsed;
        if (lastDraw is { } last && now - last < RedrawEvery && !tracker.IsMilestone(report)) return;
        lastDraw = now;
        var meter = tracker.Meter;
        var fraction = meter.TotalSteps > 0 ? Math.Clamp(meter.Position / (double)meter.TotalSteps, 0, 1) : 0;
        lock (output)
        {
            status = $"{Bar(fraction)} {fraction * 100,3:0}% {ProgressText.Status(report, meter)}";
            Draw();
        }
    }

    public void OnEvaluation(EvaluationReport report)
    {
        // After the final evaluation nothing moves any more: keep the last status as a line of its own.
        if (report.Phase == TrainingPhase.Done) Dispose();
        Line(ProgressText.Evaluation(report));
    }

    public void OnCheckpoint(string path, long bytes, TimeSpan duration) => Line(ProgressText.Checkpoint(path, bytes, duration));

    public void OnMessage(string message) => Line(message);

    /// <summary>Prints a line above the status line and redraws the status below it.</summary>
    public void Line(string text)
    {
        lock (output)
        {
            output.Write(ClearLine);
            output.WriteLine(Stamped(text));
            if (status is not null) Draw();
        }
    }

    /// <summary>Leaves the cursor on a fresh line, so whatever is printed next (results, an error) is not glued to the status.</summary>
    public void Dispose()
    {
        lock (output)
        {
            if (status is not null) output.Write('\n');
            status = null;
            output.Flush();
        }
    }

    private void Draw()
    {
        // A line longer than the terminal wraps, and '\r' then only returns to the start of its last row.
        var max = Math.Max(20, width() - 1);
        var text = status!.Length > max ? status[..max] : status;
        output.Write(ClearLine + text);
        output.Flush();
    }

    private string Stamped(string text) => $"{ProgressText.Stamp(tracker.Elapsed)} {text}";

    private static string Bar(double fraction)
    {
        const int cells = 12;
        var filled = (int)Math.Round(fraction * cells);
        return "[" + new string('#', filled) + new string('-', cells - filled) + "]";
    }
}
