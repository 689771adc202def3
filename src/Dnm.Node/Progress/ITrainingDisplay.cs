using Dnm.Core.Training;

namespace Dnm.Node.Progress;

/// <summary>
/// The console side of a training run: progress events plus free-form lines. A display reads the run's
/// <see cref="ProgressTracker"/>, which must receive each event before the display does.
/// </summary>
public interface ITrainingDisplay : ITrainingObserver, IDisposable
{
    void Line(string text);
}

public static class TrainingDisplay
{
    /// <summary>A live display on a terminal, log lines otherwise.</summary>
    public static ITrainingDisplay For(CliContext context, ProgressTracker tracker) => context.Interactive
        ? new LiveProgress(context.Out, tracker, context.TerminalWidth)
        : new LogProgress(context.Out, tracker, context.LogInterval);
}
