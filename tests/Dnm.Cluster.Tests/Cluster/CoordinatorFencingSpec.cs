using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// Two coordinator incarnations on one run directory: once the newer one has taken its number (the first thing a
/// coordinator does), the older one neither commits another step nor writes a checkpoint, and the newer one ends the
/// run bitwise where an uninterrupted run ends.
/// </summary>
public sealed class CoordinatorFencingSpec(ITestOutputHelper output)
{
    [Fact]
    public async Task Should_stop_an_older_coordinator_once_a_newer_incarnation_exists()
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        var single = TinyRun.Config(dataset, dir.Sub("single"));
        var reference = TinyRun.TrainSingleProcess(single);
        var config = single with { Out = dir.Sub("cluster") };

        // The older incarnation runs until step 6, where a newer one (incarnation 2) takes over the directory.
        RunFence? newer = null;
        var older = new RecordingObserver
        {
            OnStepHook = r =>
            {
                if (r.Phase != TrainingPhase.SomPretrain && r.GlobalStep == 6) newer = RunFence.Acquire(config.Out, "a newer coordinator");
            },
        };
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            var refused = await Assert.ThrowsAsync<ClusterRunException>(() => ClusterTraining.RunEmbeddedAsync(config, 2, older, cancel.Token));
            output.WriteLine(refused.Message);
            Assert.Contains("coordinator incarnation 2 of", refused.Message);
            Assert.Contains("started after this one (1): this coordinator does not commit step 7", refused.Message);
        }
        Assert.Equal(2, newer!.Incarnation);
        Assert.Contains(older.Messages, m => m.StartsWith("coordinator incarnation 1 of run directory", StringComparison.Ordinal));
        // Step 7 (a checkpoint point) was never committed, so nothing of it was written; neither was anything after.
        Assert.DoesNotContain(older.Steps, s => s.Phase != TrainingPhase.SomPretrain && s.GlobalStep > 6);
        Assert.Empty(Checkpoint.InOrder(Path.Combine(config.Out, "checkpoints")));
        Assert.False(File.Exists(Path.Combine(config.Out, "checkpoints", "final.ckpt")));

        // The next coordinator of the directory (incarnation 3) owns it and runs the whole run: it had nothing to resume.
        var next = new RecordingObserver();
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
            await ClusterTraining.RunEmbeddedAsync(config, 2, next, cancel.Token, resume: true);
        Assert.Contains(next.Messages, m => m.StartsWith("coordinator incarnation 3 of run directory", StringComparison.Ordinal));
        TinyRun.AssertBitwiseEqual(TinyRun.Final(config), reference, output, "the incarnation after the fenced one");
    }
}
