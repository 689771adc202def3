namespace Dnm.Node;

/// <summary>
/// Everything a command needs from its surroundings. The console process builds it from the real
/// terminal; tests pass their own writers, a token they control and a non-interactive display.
/// </summary>
public sealed record CliContext(TextWriter Out, TextWriter Error)
{
    /// <summary>Whether stdout is a terminal: a live, redrawn progress line instead of log lines.</summary>
    public bool Interactive { get; init; }

    /// <summary>DNM_DEBUG=1: print stack traces after error lines.</summary>
    public bool Debug { get; init; }

    /// <summary>Cancelled by Ctrl+C or SIGTERM.</summary>
    public CancellationToken Cancel { get; init; }

    /// <summary>
    /// Whether <see cref="Cancel"/> came from SIGTERM: a stop asked for by whoever runs the process (Kubernetes), which
    /// exits 0 once the run is checkpointed; Ctrl+C exits 130 (<see cref="CliErrors.Interrupted"/>).
    /// </summary>
    public Func<bool> Terminated { get; init; } = static () => false;

    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>Columns of the terminal; the live line is cut to fit, because a wrapped line cannot be redrawn with '\r'.</summary>
    public Func<int> TerminalWidth { get; init; } = () => 120;

    /// <summary>Reads an environment variable (DNM_METRICS_PORT, DNM_HOST, ...); tests pass their own.</summary>
    public Func<string, string?> Environment { get; init; } = System.Environment.GetEnvironmentVariable;

    /// <summary>How often plain (non-interactive) progress writes a step line.</summary>
    public TimeSpan LogInterval { get; init; } = TimeSpan.FromSeconds(10);

    public static CliContext ForConsole(CancellationToken cancel) => new(Console.Out, Console.Error)
    {
        Interactive = !Console.IsOutputRedirected,
        Debug = System.Environment.GetEnvironmentVariable("DNM_DEBUG") == "1",
        Cancel = cancel,
        TerminalWidth = () =>
        {
            try { return Console.WindowWidth > 0 ? Console.WindowWidth : 120; }
            catch (IOException) { return 120; }
        },
    };
}
