namespace Dnm.Node.Tests;

/// <summary>The built `dnm` program, run as a process: what a shell script or a Kubernetes pod sees.</summary>
public sealed class ChildProcessSpec
{
    [Fact]
    public async Task Dnm_should_exit_2_with_one_error_line_on_stderr_for_a_bad_flag()
    {
        Assert.True(File.Exists(DnmProcess.Dll), $"{DnmProcess.Dll} is missing");
        var result = await DnmProcess.RunAsync(["train", "--map", "20y30"], TimeSpan.FromMinutes(1));

        Assert.Equal(2, result.ExitCode);
        Assert.Equal("", result.Out);
        Assert.Equal(["error: map '20y30' is not RxC with positive integers (for example 20x30)"], result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
