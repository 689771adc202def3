using Dnm.Core.Som;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

public class StepShardingSpec
{
    private static void SeedPrototypes(StepEngine e)
    {
        using var scope = NewDisposeScope();
        e.Som.SetPrototypes(randn(new long[] { e.Som.Nodes, e.Som.Dim }, generator: new Generator(3)) * 0.5f);
    }

    private static (StepLoss[] Losses, IReadOnlyList<NamedArray> State) Train(int threads, int batch, int steps)
    {
        using var e = new StepEngine(StepEngineSpec.Small with { Threads = threads }, StepEngineSpec.Shape, CPU, batch);
        Assert.Equal(threads, e.Threads);
        SeedPrototypes(e);
        var f = new float[e.Layout.Nodes];
        var s = new float[e.Layout.Length];
        var schedule = new SomSchedule(2, 0.3, 50, 0.5);
        var losses = new StepLoss[steps];
        for (int step = 0; step < steps; step++)
        {
            var images = StepEngineSpec.SyntheticImages(batch, 200 + step);
            e.Forward(images, batch, step < 3 ? StepMode.Autoencoder : StepMode.Joint, f);
            e.Backward(f, batch, s);
            losses[step] = e.Apply(s, batch, new ScheduleValues(schedule.Sigma(step), schedule.Eta(step)));
        }
        return (losses, EngineState.Export(e));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Sharded_steps_equal_the_single_thread_step(int threads)
    {
        var (one, oneState) = Train(1, 13, 8);
        var (many, manyState) = Train(threads, 13, 8);
        for (int i = 0; i < one.Length; i++)
        {
            Assert.Equal(one[i].Samples, many[i].Samples);
            Assert.Equal(one[i].Total, many[i].Total, 5);
        }
        for (int i = 0; i < oneState.Count; i++)
        {
            if (oneState[i].Name.StartsWith("adam", StringComparison.Ordinal)) continue;
            var err = StepEngineSpec.RelativeError(oneState[i].Data, manyState[i].Data);
            Assert.True(err < 1e-5, $"{oneState[i].Name}: relative error {err:E2}");
        }
    }

    [Fact]
    public void Sharded_steps_are_deterministic()
    {
        var (a, aState) = Train(2, 16, 5);
        var (b, bState) = Train(2, 16, 5);
        Assert.Equal(a, b);
        for (int i = 0; i < aState.Count; i++) Assert.Equal(aState[i].Data, bState[i].Data);
    }

    [Fact]
    public void Fewer_samples_than_threads_and_an_empty_batch_work()
    {
        using var e = new StepEngine(StepEngineSpec.Small with { Threads = 4 }, StepEngineSpec.Shape, CPU, 8);
        SeedPrototypes(e);
        var f = new float[e.Layout.Nodes];
        var s = new float[e.Layout.Length];
        e.Forward(StepEngineSpec.SyntheticImages(2, 1), 2, StepMode.Joint, f);
        Assert.Equal(2, f.Sum(), 3);
        e.Backward(f, 2, s);
        Assert.Equal(2, e.Apply(s, 2, new ScheduleValues(1, 0.1)).Samples);

        e.Forward(ReadOnlySpan<float>.Empty, 0, StepMode.Joint, f);
        Assert.All(f, v => Assert.Equal(0f, v));
        e.Backward(f, 4, s);
        Assert.All(s, v => Assert.Equal(0f, v));
        e.Abort();
    }

    [Fact]
    public void Embeddings_do_not_depend_on_the_thread_count()
    {
        using var one = new StepEngine(StepEngineSpec.Small with { Threads = 1 }, StepEngineSpec.Shape, CPU, 11);
        using var three = new StepEngine(StepEngineSpec.Small with { Threads = 3 }, StepEngineSpec.Shape, CPU, 11);
        var images = StepEngineSpec.SyntheticImages(11, 9);
        using var scope = NewDisposeScope();
        var a = one.Embed(images, 11);
        var b = three.Embed(images, 11);
        Assert.Equal(new long[] { 11, StepEngineSpec.Small.Latent }, b.shape);
        Assert.True(a.allclose(b, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public async Task Phases_of_a_step_may_run_on_different_threads()
    {
        using var e = new StepEngine(StepEngineSpec.Small with { Threads = 2 }, StepEngineSpec.Shape, CPU, 8);
        SeedPrototypes(e);
        var f = new float[e.Layout.Nodes];
        var s = new float[e.Layout.Length];
        var images = StepEngineSpec.SyntheticImages(8, 4);
        // Each phase on a thread-pool thread of its own, as an actor's messages may be.
        await Task.Run(() => e.Forward(images, 8, StepMode.Joint, f));
        await Task.Run(() => e.Backward(f, 8, s));
        var loss = await Task.Run(() => e.Apply(s, 8, new ScheduleValues(1, 0.1)));
        Assert.Equal(8, loss.Samples);
        Assert.False(double.IsNaN(loss.Total));
    }
}
