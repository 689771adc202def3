using System.Diagnostics;

namespace Dnm.Core.Data;

/// <summary>Runs a command-line tool that a dataset source falls back to (npm, apt-get, dpkg-deb).</summary>
internal static class ToolProcess
{
    /// <summary>
    /// Runs <paramref name="program"/> to its end and returns its exit code (null when it ran past
    /// <paramref name="timeout"/> and was killed) and its output, stderr first. Both pipes are read while it runs: a
    /// child blocked on a full pipe never exits.
    /// </summary>
    /// <exception cref="System.ComponentModel.Win32Exception">The program is not installed.</exception>
    public static async Task<(int? ExitCode, string Output)> RunAsync(string program, string workDir, TimeSpan timeout, CancellationToken ct, params string[] args)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new IOException($"could not start {program}");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            ct.ThrowIfCancellationRequested();
            return (null, "");
        }
        await Task.WhenAll(stdout, stderr);
        return (process.ExitCode, stderr.Result + stdout.Result);
    }

    /// <summary>The last <paramref name="count"/> non-empty lines of <paramref name="output"/> that <paramref name="keep"/> keeps, joined with " | ".</summary>
    public static string LastLines(string output, Func<string, bool> keep, int count) =>
        string.Join(" | ", output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(keep).TakeLast(count));
}
