using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Dnm.Tests.Shared;
using Xunit.Abstractions;

namespace Dnm.Deploy.Tests;

/// <summary>
/// scripts/churn.sh at CI size: a coordinator and 4 worker processes, a random worker SIGKILLed and started again every
/// 10 s for a minute, the run left to finish. The script checks the run's end, the workers' exits, the commit log (every
/// step once) and the coordinator's RSS; this spec checks that it says so, with numbers that hold together.
/// </summary>
public sealed partial class ChurnSpec(ITestOutputHelper output)
{
    [Fact]
    public void A_run_should_finish_with_every_step_applied_once_while_workers_are_killed_and_restarted()
    {
        // The churn ends after a minute or once 744 of the run's 992 steps have committed: about 70 s on the quiet 2-core
        // development VM (3 kills), 2 min 7 s with three busy loops beside it (6 kills). It prints a line at every kill, so a
        // run stopped at the time limit shows how far it got.
        var (code, text) = Run(TimeSpan.FromMinutes(10), "--workers", "4", "--minutes", "1", "--every", "10", "--epochs", "60", "--seed", "3");
        Assert.True(code == 0, text);
        var summary = Summary().Match(text);
        Assert.True(summary.Success, $"no summary line in:\n{text}");
        output.WriteLine(summary.Value);
        int Number(string name) => int.Parse(summary.Groups[name].Value, CultureInfo.InvariantCulture);
        Assert.True(Number("kills") >= 2, summary.Value);
        // The commit log holds steps 1..992 once each (the script compared it line by line), committed in several worlds
        // (membership epochs): the kills changed the world while steps went on.
        Assert.Equal(16 * (2 + 60), Number("steps"));
        Assert.Equal(Number("steps"), Number("commits"));
        Assert.True(Number("worlds") >= 2, summary.Value);
        // Steps committed while workers were being killed: the coordinator kept training through the churn.
        Assert.True(Number("during") > 0, summary.Value);
        Assert.True(Number("growth") <= 50, summary.Value);
    }

    [Fact]
    public void Fewer_than_two_workers_should_be_refused_before_anything_starts()
    {
        var (code, text) = Run(TimeSpan.FromSeconds(30), "--workers", "1");
        Assert.Equal(2, code);
        Assert.Contains("--workers must be at least 2 (one is killed at a time), got 1", text);
    }

    [GeneratedRegex(@"churn: ok workers=4 kills=(?<kills>\d+) .* churn_steps=(?<during>\d+) .* steps=(?<steps>\d+) commits=(?<commits>\d+) worlds=(?<worlds>\d+) .* growth=(?<growth>-?\d+)%")]
    private static partial Regex Summary();

    private static (int Code, string Output) Run(TimeSpan limit, params string[] arguments)
    {
        var start = new ProcessStartInfo(Repo.Path("scripts", "churn.sh")) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Repo.Root };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var p = Process.Start(start)!;
        var lines = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(limit))
        {
            // SIGTERM first: the script's trap stops the nodes it started.
            Process.Start("kill", ["-TERM", p.Id.ToString(CultureInfo.InvariantCulture)])?.WaitForExit();
            if (!p.WaitForExit(TimeSpan.FromSeconds(30))) p.Kill(entireProcessTree: true);
            lock (lines) return (-1, $"churn.sh did not finish within {limit}\n{lines}");
        }
        p.WaitForExit();
        lock (lines) return (p.ExitCode, lines.ToString());
    }
}
