using Dnm.Core.Config;
using Dnm.Core.Som;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

// Counts the process's threads by name, so no other engine may start or stop meanwhile.
[CollectionDefinition(nameof(ShardThreadsSpec), DisableParallelization = true)]
public sealed class ShardThreadsCollection;

[Collection(nameof(ShardThreadsSpec))]
public sealed class ShardThreadsSpec
{
    [Theory]
    [InlineData("mlp", 1)]
    [InlineData("mlp", 2)]
    [InlineData("conv", 2)]
    public void A_CPU_step_runs_on_the_engines_shard_threads_alone_without_an_OpenMP_team(string encoder, int threads)
    {
        // Linux names a thread after its creator's name (15 bytes of it): OpenMP's team members of a shard thread are
        // "dnm-step shard " too. Before each shard thread set its own OpenMP thread count, each forked one member per core
        // at its first matrix product, and those members spun after every kernel.
        if (!OperatingSystem.IsLinux()) return;
        var config = StepEngineSpec.Small with
        {
            Encoder = KebabEnum.Parse<EncoderKind>("encoder", encoder),
            Hidden = [48, 24], MicroBatch = 4, Threads = threads,
        };
        // By thread id, not by count: a stray engine's shard thread (another spec's, ending) must not count either way.
        var before = ShardThreadIds();
        using (var engine = new StepEngine(config, StepEngineSpec.Shape, CPU, 32))
        {
            var f = new float[engine.Layout.Nodes];
            var s = new float[engine.Layout.Length];
            for (var step = 0; step < 3; step++)
            {
                engine.Forward(StepEngineSpec.SyntheticImages(32, step), 32, StepMode.Joint, f);
                engine.Backward(f, s);
                engine.Apply(s, 32, new ScheduleValues(1, 0.1));
            }
            Assert.Equal(threads, engine.Threads);
            Assert.Equal(threads, ShardThreadIds().Except(before).Count());
        }
    }

    private static HashSet<string> ShardThreadIds() =>
        Directory.EnumerateDirectories("/proc/self/task").Where(task =>
        {
            try
            {
                return File.ReadAllText(Path.Combine(task, "comm")).StartsWith("dnm-step shard", StringComparison.Ordinal);
            }
            catch (IOException)
            {
                return false; // the thread ended meanwhile
            }
        }).Select(Path.GetFileName).OfType<string>().ToHashSet();
}
