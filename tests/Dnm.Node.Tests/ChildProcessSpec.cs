using System.Diagnostics;

namespace Dnm.Node.Tests;

/// <summary>The built `dnm` program, run as a process: what a shell script or a Kubernetes pod sees.</summary>
public sealed class ChildProcessSpec
{
    [Fact]
    public async Task Dnm_should_exit_2_with_one_error_line_on_stderr_for_a_bad_flag()
    {
        // dnm.dll is copied next to the tests (project reference); run it with the same dotnet host.
        var dll = Path.Combine(AppContext.BaseDirectory, "dnm.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing");
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { dll, "train", "--map", "20y30" }) start.ArgumentList.Add(arg);

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(2, process.ExitCode);
        Assert.Equal("", await stdout);
        Assert.Equal(["error: map '20y30' is not RxC with positive integers (for example 20x30)"], (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
