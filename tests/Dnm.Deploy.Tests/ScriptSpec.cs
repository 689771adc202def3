using System.Diagnostics;
using Dnm.Tests.Shared;

namespace Dnm.Deploy.Tests;

/// <summary>The deployment scripts CI runs: scripts/check-dockerfile and scripts/rehearse-k8s.sh.</summary>
public sealed class ScriptSpec
{
    [Fact]
    public void Check_dockerfile_should_pass()
    {
        // Publishes dnm for the CPU into a temporary folder (about a minute), as the Dockerfile's build stage does.
        var (code, output) = Run(Repo.Path("scripts", "check-dockerfile"), TimeSpan.FromMinutes(10));
        Assert.True(code == 0, output);
        Assert.Contains("ok: the published entry point /app/dnm exists and is executable", output);
        Assert.Contains("ok: TorchBackend=cuda references TorchSharp-cuda-linux and no CPU libtorch", output);
        Assert.Matches(@"check-dockerfile: \d+ passed, 0 failed", output);
    }

    [NeedsNetworkNamespacesFact]
    public void Rehearsal_of_the_kubernetes_topology_should_train_to_completion()
    {
        var (code, output) = Run(Repo.Path("scripts", "rehearse-k8s.sh"), TimeSpan.FromMinutes(12));
        Assert.True(code == 0, output);
        // The script checks the rest (final metrics written, every worker in the world and at the last step, probes, /metrics).
        Assert.Matches(@"OK: 4 nodes \(1 coordinator, 3 workers\) in their own network namespaces trained \d+ steps", output);
        Assert.Contains("final metrics: {", output);
    }

    [NeedsNetworkNamespacesFact]
    public void Rehearsal_should_finish_after_the_coordinators_link_is_cut_for_30_seconds()
    {
        // The partition variant: the split-brain resolver downs the coordinator's side, every node rejoins with a fresh
        // actor system, and the coordinator resumes from its newest checkpoint (docs/kubernetes.md).
        var (code, output) = Run(Repo.Path("scripts", "rehearse-k8s.sh"), TimeSpan.FromMinutes(12), ["--partition-coordinator", "30"]);
        Assert.True(code == 0, output);
        Assert.Contains("partition: healed", output);
        Assert.Contains("partition: every worker rejoined", output);
        Assert.Matches(@"OK: 4 nodes \(1 coordinator, 3 workers\) in their own network namespaces trained \d+ steps", output);
    }

    [NeedsNetworkNamespacesFact]
    public void Rehearsal_should_finish_after_a_2_2_partition_of_30_seconds()
    {
        // {coordinator, worker 0} | {worker 1, worker 2}: the split-brain resolver downs one half, whose nodes rejoin with
        // fresh actor systems (and the coordinator resumes from its newest checkpoint if it was on the downed side).
        var (code, output) = Run(Repo.Path("scripts", "rehearse-k8s.sh"), TimeSpan.FromMinutes(12), ["--partition-halves", "30"]);
        Assert.True(code == 0, output);
        Assert.Contains("partition: split dnm-coordinator-0 dnm-worker-0 | dnm-worker-1 dnm-worker-2 for 30s", output);
        Assert.Contains("partition: healed", output);
        Assert.Matches(@"partition: the downed half \((dnm-coordinator-0 dnm-worker-0|dnm-worker-1 dnm-worker-2)\) rejoined on its own and trained to the end", output);
        Assert.Matches(@"OK: 4 nodes \(1 coordinator, 3 workers\) in their own network namespaces trained \d+ steps", output);
    }

    [NeedsNetworkNamespacesFact]
    public void Rehearsal_should_fail_loudly_when_a_node_fails()
    {
        using var dir = new TempDirectory();
        var broken = Path.Combine(dir.Path, "dnm");
        File.WriteAllText(broken, "#!/bin/sh\necho 'simulated start-up failure' >&2\nexit 3\n");
        // Readable and executable by the manifests' non-root user, as whom the rehearsal starts every node.
        File.SetUnixFileMode(broken, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                     UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var (code, output) = Run(Repo.Path("scripts", "rehearse-k8s.sh"), TimeSpan.FromMinutes(5), ("DNM_BIN", broken));
        Assert.NotEqual(0, code);
        Assert.Matches(@"rehearse-k8s: FAILED: dnm-(coordinator|worker)-\d exited with status 3", output);
        Assert.Contains("simulated start-up failure", output);
    }

    private static (int Code, string Output) Run(string script, TimeSpan limit, params (string Name, string Value)[] environment) =>
        Run(script, limit, [], environment);

    private static (int Code, string Output) Run(string script, TimeSpan limit, string[] arguments, params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo(script) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Repo.Root };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment) start.Environment[name] = value;
        using var p = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(limit))
        {
            // SIGTERM first: the script's trap removes its namespaces and stops its nodes.
            Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])?.WaitForExit();
            if (!p.WaitForExit(TimeSpan.FromSeconds(30))) p.Kill(entireProcessTree: true);
            return (-1, $"{script} did not finish within {limit}\n{output}");
        }
        p.WaitForExit();
        lock (output) return (p.ExitCode, output.ToString());
    }
}

/// <summary>
/// A fact that needs root and iproute2 (network namespaces). Without them it is skipped on a developer's machine, but
/// runs (and fails, saying what is missing) where CI=true, so CI can never pass by skipping it.
/// </summary>
public sealed class NeedsNetworkNamespacesFactAttribute : FactAttribute
{
    public NeedsNetworkNamespacesFactAttribute()
    {
        var root = Environment.UserName == "root";
        var ip = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "ip")));
        if ((!root || !ip) && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            var missing = new[] { root ? null : "root", ip ? null : "iproute2 (apt-get install -y iproute2)" }.OfType<string>();
            Skip = $"network namespaces need {string.Join(" and ", missing)}; with CI=true this fails instead";
        }
    }
}
