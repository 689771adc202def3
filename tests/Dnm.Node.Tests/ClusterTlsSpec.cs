using System.Globalization;
using Dnm.Tests.Shared;
using Xunit.Abstractions;

namespace Dnm.Node.Tests;

/// <summary>
/// `dnm cert create` and `dnm node --tls-*` as separate OS processes: a coordinator and a worker with the cluster's certificates train
/// over mutual TLS, while a node without TLS and one whose certificate another CA signed try to join and are refused.
/// </summary>
public sealed class ClusterTlsSpec(ITestOutputHelper output)
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task Should_train_over_mutual_TLS_while_nodes_without_a_certificate_of_the_cluster_CA_are_refused()
    {
        using var dir = new ScratchDirectory();
        var dataset = SyntheticIdx.Spec(dir.Path, count: 96);
        var cluster = dir.File("tls");
        var other = dir.File("other-tls");
        foreach (var folder in new[] { cluster, other })
        {
            var made = await DnmProcess.RunAsync(["cert", "create", "--out", folder, "--nodes", "localhost", "--days", "2"], TimeSpan.FromMinutes(1));
            Assert.True(made.ExitCode == 0, made.Error + made.Out);
        }
        var port = TestPorts.Next();
        var run = dir.File("run");
        string[] Tls(string folder) => ["--tls-cert", Path.Combine(folder, "tls.crt"), "--tls-key", Path.Combine(folder, "tls.key"), "--tls-ca", Path.Combine(folder, "ca.crt")];
        string[] Node(string role, string joinTimeout, params string[] extra) =>
        [
            "node", "--role", role, "--host", "127.0.0.1", "--bind-host", "127.0.0.1", "--port", role == "coordinator" ? port.ToString(CultureInfo.InvariantCulture) : "0",
            "--seeds", $"127.0.0.1:{port}", "--join-timeout", joinTimeout, "--no-metrics", .. extra,
        ];

        // The coordinator waits for one worker. The rogues come first: had either joined, it would be that worker.
        var coordinator = DnmProcess.RunAsync(Node("coordinator", "180s", [.. Tls(cluster), "--min-workers", "1",
            "--dataset", dataset, "--encoder", "conv", "--channels", "4,4,2", "--kernel", "3", "--latent", "8", "--map", "3x3", "--batch-size", "16", "--micro-batch", "4",
            "--pretrain-epochs", "1", "--epochs", "1", "--som-iterations", "10", "--threads", "1", "--device", "cpu", "--out", run]), RunTimeout);
        var plain = DnmProcess.RunAsync(Node("worker", "20s"), RunTimeout);
        var foreign = DnmProcess.RunAsync(Node("worker", "20s", Tls(other)), RunTimeout);
        foreach (var (name, rogue) in new[] { ("no certificate", await plain), ("another CA", await foreign) })
        {
            output.WriteLine($"--- rogue with {name}: exit {rogue.ExitCode}\n{rogue.Out}\n{rogue.Error}");
            Assert.Equal(1, rogue.ExitCode);
            Assert.Contains("could not join the cluster within 20s", rogue.Error);
        }
        // The node without TLS says so, naming the flags; the other refused the coordinator's certificate (not of its CA).
        Assert.Contains("WARNING: TLS is off", (await plain).Error);
        Assert.Contains("--tls-cert, --tls-key and --tls-ca", (await plain).Error);
        Assert.Contains("refused the TLS peer", (await foreign).Out + (await foreign).Error);
        Assert.False(coordinator.IsCompleted, "the coordinator should still be waiting for a worker");

        var worker = await DnmProcess.RunAsync(Node("worker", "120s", Tls(cluster)), RunTimeout);
        var led = await coordinator;
        output.WriteLine($"--- coordinator: exit {led.ExitCode}\n{led.Out}\n{led.Error}\n--- worker: exit {worker.ExitCode}\n{worker.Out}\n{worker.Error}");
        Assert.Equal(0, led.ExitCode);
        Assert.Equal(0, worker.ExitCode);
        Assert.Contains("mutual TLS (CA ", led.Out);
        Assert.DoesNotContain("WARNING: TLS is off", led.Error + worker.Error);
        Assert.Contains("run finished", led.Out);
        // Every world the coordinator formed held the one legitimate worker, and no other.
        var worlds = (led.Out + led.Error).Split('\n').Where(l => l.Contains("membership epoch", StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(worlds);
        Assert.All(worlds, w => Assert.Contains(": 1 worker(s)", w));
        Assert.True(File.Exists(Path.Combine(run, "checkpoints", "final.ckpt")));
        Assert.True(File.Exists(Path.Combine(run, "final-metrics.json")));
    }

    [Fact]
    public void Node_should_exit_2_naming_a_missing_certificate_file_before_it_starts()
    {
        using var dir = new ScratchDirectory();
        Assert.Equal(0, Cli.Run("cert", "create", "--out", dir.File("tls")).ExitCode);
        var missing = dir.File("tls", "missing.crt");
        var result = Cli.Run("node", "--role", "worker", "--seeds", "127.0.0.1:1", "--port", "0", "--no-metrics",
            "--tls-cert", missing, "--tls-key", dir.File("tls", "tls.key"), "--tls-ca", dir.File("tls", "ca.crt"));
        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith($"error: --tls-cert (DNM_TLS_CERT) {missing}: no such file; make a CA and a node certificate with `dnm cert create", result.Error);
        Assert.Equal("", result.Out);
    }
}
