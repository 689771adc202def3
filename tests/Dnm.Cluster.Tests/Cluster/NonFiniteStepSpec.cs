using System.Text.RegularExpressions;
using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// A step whose reduced sums hold NaN or infinity is skipped by every replica alike, so a cluster skips the same steps
/// as one process, and fails at the same step when they repeat; the coordinator names the ranks whose blocks held them.
/// </summary>
public sealed class NonFiniteStepSpec(ITestOutputHelper output)
{
    private sealed class Messages : ITrainingObserver
    {
        public List<string> Lines { get; } = [];
        public void OnMessage(string message) { lock (Lines) Lines.Add(message); }
    }

    [Fact]
    public async Task A_diverging_cluster_run_should_skip_name_the_ranks_and_fail_at_the_single_process_step()
    {
        using var dir = new TempDir();
        var dataset = TinyRun.WriteDataset(dir.Path);
        // Adam moves every weight by about the learning rate: after one step of 1e30 the activations overflow float.
        var single = TinyRun.Config(dataset, dir.Sub("single")) with { LearningRate = 1e30 };
        var expected = Assert.Throws<NonFiniteStepException>(() => TinyRun.TrainSingleProcess(single)).Message;
        var lastStep = Regex.Match(expected, @"the last step (\d+)").Groups[1].Value;

        var messages = new Messages();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var e = await Assert.ThrowsAsync<ClusterRunException>(() =>
            ClusterTraining.RunEmbeddedAsync(single with { Out = dir.Sub("cluster") }, 2, messages, cancel.Token));

        output.WriteLine(e.Message);
        Assert.StartsWith($"5 steps in a row, the last step {lastStep}, had NaN or infinity", e.Message);
        Assert.Matches(@"non-finite contribution from rank \d \(worker [^)]+\)", e.Message);
        Assert.Equal(4, messages.Lines.Count(l => l.StartsWith("warning: step ", StringComparison.Ordinal) && l.Contains(" skipped: ")));
    }
}
