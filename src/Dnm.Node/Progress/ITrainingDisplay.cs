using Dnm.Core.Config;
using Dnm.Core.Training;

namespace Dnm.Node.Progress;

/// <summary>The console side of a training run: progress events plus free-form lines.</summary>
public interface ITrainingDisplay : ITrainingObserver, IDisposable
{
    void Line(string text);
}

public static class TrainingDisplay
{
    /// <summary>A live display on a terminal, log lines otherwise.</summary>
    public static ITrainingDisplay For(CliContext context, DnmConfig config) => context.Interactive
        ? new LiveProgress(context.Out, config, context.Clock, context.TerminalWidth)
        : new LogProgress(context.Out, config, context.Clock, context.LogInterval);
}
