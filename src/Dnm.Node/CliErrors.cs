using System.CommandLine.Parsing;
using System.Reflection;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Training;

namespace Dnm.Node;

/// <summary>
/// The one place that turns failures into exit codes and `error:` lines:
/// 2 for a bad flag, config or dataset spec; 3 for missing or corrupt data or checkpoints;
/// 130 when interrupted; 1 for anything else. Each failure is exactly one line on stderr, so scripts
/// and log collectors can show it whole (the stack trace follows only with DNM_DEBUG=1).
/// </summary>
public static class CliErrors
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int Data = 3;
    /// <summary>128 + SIGINT, what shells report for a process stopped by Ctrl+C.</summary>
    public const int Interrupted = 130;

    public static int ExitCodeOf(Exception e) => Unwrap(e) switch
    {
        ConfigException or DatasetSpecException => Usage,
        DataException or CheckpointException => Data,
        OperationCanceledException => Interrupted,
        _ => Failure,
    };

    public static int Report(Exception exception, CliContext context)
    {
        var e = Unwrap(exception);
        var code = ExitCodeOf(e);
        var message = code switch
        {
            Interrupted => "interrupted",
            // An unexpected exception's message alone is often cryptic ("Object reference not set..."): name its type.
            Failure => $"{e.GetType().Name}: {e.Message}" + (context.Debug ? "" : " (set DNM_DEBUG=1 for the stack trace)"),
            _ => e.Message,
        };
        WriteError(context, message);
        if (context.Debug) context.Error.WriteLine(e.ToString());
        return code;
    }

    /// <summary>System.CommandLine's own errors (unknown option, unparsable value) reduced to one line.</summary>
    public static int ReportParseErrors(IReadOnlyList<ParseError> errors, CliContext context)
    {
        var messages = errors.Select(e => e.Message.TrimEnd('.')).Distinct();
        WriteError(context, string.Join("; ", messages) + " (see --help)");
        return Usage;
    }

    public static void WriteError(CliContext context, string message) =>
        context.Error.WriteLine($"error: {OneLine(message)}");

    private static string OneLine(string text) =>
        string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static Exception Unwrap(Exception e) => e switch
    {
        AggregateException { InnerExceptions.Count: 1 } a => Unwrap(a.InnerExceptions[0]),
        TargetInvocationException { InnerException: { } inner } => Unwrap(inner),
        _ => e,
    };
}
