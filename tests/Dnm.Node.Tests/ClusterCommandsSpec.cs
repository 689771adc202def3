using Dnm.Tests.Shared;
namespace Dnm.Node.Tests;

/// <summary>`dnm node` and `dnm train --workers`: the command-line side of the cluster (its protocol is specified in Dnm.Cluster.Tests).</summary>
public sealed class ClusterCommandsSpec
{
    [Fact]
    public void Node_help_should_list_the_cluster_and_training_flags()
    {
        var result = Cli.Run("node", "--help");
        Assert.Equal(0, result.ExitCode);
        foreach (var flag in new[] { "--role", "--seeds", "--host", "--port", "--local-workers", "--devices", "--min-workers", "--join-timeout", "--batch-size", "--dataset",
                     "--metrics-port", "--metrics-host", "--no-metrics" })
            Assert.Contains(flag, result.Out);
        Assert.Contains("DNM_SEEDS", result.Out);
        Assert.Contains("DNM_METRICS_PORT", result.Out);
        Assert.Contains("--workers", Cli.Run("train", "--help").Out);
    }

    [Fact]
    public void Node_should_exit_2_when_a_worker_has_no_seeds()
    {
        var result = Cli.Run("node", "--role", "worker");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("a worker needs --seeds", result.Error);
    }

    [Fact]
    public void Train_should_exit_2_for_zero_workers()
    {
        var result = Cli.Run("train", "--workers", "0");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--workers must be at least 1", result.Error);
    }

    [Fact]
    public void Node_should_name_the_seed_it_cannot_reach()
    {
        var port = TestPorts.Next();
        var result = Cli.Run("node", "--role", "worker", "--seeds", $"127.0.0.1:{port}", "--host", "127.0.0.1", "--port", "0", "--join-timeout", "2s");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"could not join the cluster within 2s: no seed node answered at 127.0.0.1:{port}", result.Error);
    }

    [Fact]
    public async Task Train_with_workers_should_write_a_complete_run_directory_and_serve_each_workers_metrics()
    {
        using var dir = new ScratchDirectory();
        var spec = SyntheticIdx.Spec(dir.Path, count: 96);
        var output = dir.File("run");
        var port = TestPorts.Next();
        // A child process: the embedded cluster builds its engines while other specs of this assembly build theirs.
        var run = DnmProcess.RunAsync(["train", "--dataset", spec, "--encoder", "conv", "--channels", "4,4,2", "--kernel", "3", "--latent", "8", "--map", "3x3",
            "--batch-size", "16", "--micro-batch", "4", "--pretrain-epochs", "1", "--epochs", "1", "--som-iterations", "10", "--threads", "1", "--device", "cpu",
            "--out", output, "--workers", "2", "--metrics-host", "127.0.0.1", "--metrics-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(3));
        // Scraped until the process ends: dnm waits for a scrape after the run, so the last answer has the final numbers.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        string? metrics = null;
        while (!run.IsCompleted)
        {
            try
            {
                metrics = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet, or already gone.
            }
            await Task.WhenAny(run, Task.Delay(100));
        }
        var (_, code, stdout, stderr) = await run;
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("training finished", stdout);
        foreach (var file in new[] { "config.json", "final-metrics.json", "metrics.jsonl", "prototypes.png", "checkpoints/final.ckpt" })
            Assert.True(File.Exists(Path.Combine(output, file)), $"{file} is missing");

        // 96 samples, batch 16: 6 steps an epoch, 2 epochs; each worker takes 8 samples of every step.
        Assert.NotNull(metrics);
        foreach (var expected in new[]
                 {
                     "dnm_train_steps_total{role=\"coordinator\",rank=\"0\",device=\"cpu\"} 12",
                     "dnm_train_samples_total{role=\"worker\",rank=\"0\",device=\"cpu\"} 96",
                     "dnm_train_samples_total{role=\"worker\",rank=\"1\",device=\"cpu\"} 96",
                     "dnm_train_phase_duration_seconds_count{role=\"worker\",rank=\"1\",device=\"cpu\",phase=\"gradient_reduce\"} 12",
                     "dnm_cluster_membership_changes_total{role=\"coordinator\",rank=\"0\",device=\"cpu\"} 2",
                     "dnm_cluster_workers{role=\"worker\",rank=\"1\",device=\"cpu\"} 2",
                     "dnm_cluster_workers{role=\"coordinator\",rank=\"0\",device=\"cpu\"} 2",
                 })
            Assert.Contains(expected, metrics);
        Assert.DoesNotContain("role=\"trainer\"", metrics);
    }
}
