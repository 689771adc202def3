using System.Diagnostics;

namespace Dnm.Node.Tests;

/// <summary>What a `dnm` child process printed and returned.</summary>
public sealed record DnmProcessResult(string[] Args, int ExitCode, string Out, string Error);

/// <summary>
/// The built `dnm` program run as a child process with the same dotnet host as the tests (dnm.dll is
/// copied next to them by the project reference): what a shell script or a Kubernetes pod sees.
/// </summary>
public static class DnmProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "dnm.dll");

    /// <summary>Runs dnm with <paramref name="args"/>; <paramref name="environment"/> may edit the child's environment. Killed past <paramref name="timeout"/>.</summary>
    public static async Task<DnmProcessResult> RunAsync(string[] args, TimeSpan timeout, Action<IDictionary<string, string?>>? environment = null)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        start.ArgumentList.Add(Dll);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        environment?.Invoke(start.Environment);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return new DnmProcessResult(args, process.ExitCode, await stdout, await stderr);
    }
}
