using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>The coordinator resumes as `dnm train --resume` does: from the newest checkpoint of its run directory that verifies.</summary>
public sealed class CoordinatorResumeSpec(ITestOutputHelper output)
{
    private sealed class Messages : ITrainingObserver
    {
        public List<string> Lines { get; } = [];
        public void OnMessage(string message) { lock (Lines) Lines.Add(message); }
    }

    [Fact]
    public async Task Should_skip_a_corrupt_newest_checkpoint_name_it_and_end_bitwise_equal()
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        // 30 steps, checkpoint-every 7: the single run leaves step-14, step-21 and step-28.
        var single = TinyRun.Config(dataset, dir.Sub("single"));
        var reference = TinyRun.TrainSingleProcess(single);

        var config = single with { Out = dir.Sub("cluster") };
        var checkpoints = new RunDirectory(config.Out).Checkpoints;
        foreach (var step in new[] { 14, 21, 28 })
            File.Copy(Path.Combine(single.Out, "checkpoints", Checkpoint.FileName(step)), Path.Combine(checkpoints, Checkpoint.FileName(step)));
        var newest = Path.Combine(checkpoints, Checkpoint.FileName(28));
        var bytes = File.ReadAllBytes(newest);
        bytes[bytes.Length / 3] ^= 0x01;
        File.WriteAllBytes(newest, bytes);

        var messages = new Messages();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await ClusterTraining.RunEmbeddedAsync(config, 2, messages, cancel.Token, resume: true);

        foreach (var line in messages.Lines.Take(8)) output.WriteLine(line);
        Assert.Contains(messages.Lines, l => l.StartsWith("warning: skipping checkpoint step-000000028.ckpt: ", StringComparison.Ordinal) && l.Contains("corrupt"));
        Assert.Contains(messages.Lines, l => l.Contains("resumed at phase Joint, epoch 1, step 3 (global step 21)"));
        TinyRun.AssertBitwiseEqual(TinyRun.Final(config), reference, output, "2 workers resumed from step 21 past a corrupt step 28");
    }
}
