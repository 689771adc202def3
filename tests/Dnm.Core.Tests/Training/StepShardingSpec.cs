using Dnm.Core.Som;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

public class StepShardingSpec
{
    // Micro-batches of 4 samples: a batch of 13 or 16 is 4 of them, enough for every thread count below.
    private static readonly Config.DnmConfig Micro4 = StepEngineSpec.Small with { MicroBatch = 4 };

    private static void SeedPrototypes(StepEngine e)
    {
        using var scope = NewDisposeScope();
        e.Som.SetPrototypes(randn(new long[] { e.Som.Nodes, e.Som.Dim }, generator: new Generator(3)) * 0.5f);
    }

    private static (StepLoss[] Losses, IReadOnlyList<NamedArray> State) Train(int threads, int batch, int steps)
    {
        using var e = new StepEngine(Micro4 with { Threads = threads }, StepEngineSpec.Shape, CPU, batch);
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
            e.Backward(f, s);
            losses[step] = e.Apply(s, batch, new ScheduleValues(schedule.Sigma(step), schedule.Eta(step)));
        }
        return (losses, EngineState.Export(e));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Sharded_steps_equal_the_single_thread_step_bitwise(int threads)
    {
        // Each micro-batch is computed alone and the micro-batches are summed in one fixed tree, so the thread count
        // changes no bit: losses, parameters, Adam moments and prototypes.
        var (one, oneState) = Train(1, 13, 8);
        var (many, manyState) = Train(threads, 13, 8);
        Assert.Equal(one, many);
        for (int i = 0; i < oneState.Count; i++) Assert.Equal(oneState[i].Data, manyState[i].Data);
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
        using var e = new StepEngine(Micro4 with { Threads = 4 }, StepEngineSpec.Shape, CPU, 8);
        SeedPrototypes(e);
        var f = new float[e.Layout.Nodes];
        var s = new float[e.Layout.Length];
        e.Forward(StepEngineSpec.SyntheticImages(2, 1), 2, StepMode.Joint, f);
        Assert.Equal(2, f.Sum(), 3);
        e.Backward(f, s);
        Assert.Equal(2, e.Apply(s, 2, new ScheduleValues(1, 0.1)).Samples);

        e.Forward(ReadOnlySpan<float>.Empty, 0, StepMode.Joint, f);
        Assert.All(f, v => Assert.Equal(0f, v));
        e.Backward(f, s);
        Assert.All(s, v => Assert.Equal(0f, v));
        e.Abort();
    }

    [Fact]
    public void Embeddings_do_not_depend_on_the_thread_count_by_a_bit()
    {
        using var one = new StepEngine(Micro4 with { Threads = 1 }, StepEngineSpec.Shape, CPU, 11);
        using var three = new StepEngine(Micro4 with { Threads = 3 }, StepEngineSpec.Shape, CPU, 11);
        var images = StepEngineSpec.SyntheticImages(11, 9);
        using var scope = NewDisposeScope();
        var a = one.Embed(images, 11);
        var b = three.Embed(images, 11);
        Assert.Equal(new long[] { 11, StepEngineSpec.Small.Latent }, b.shape);
        Assert.Equal(a.data<float>().ToArray(), b.data<float>().ToArray());
    }

    [Fact]
    public async Task Phases_of_a_step_may_run_on_different_threads()
    {
        using var e = new StepEngine(Micro4 with { Threads = 2 }, StepEngineSpec.Shape, CPU, 8);
        SeedPrototypes(e);
        var f = new float[e.Layout.Nodes];
        var s = new float[e.Layout.Length];
        var images = StepEngineSpec.SyntheticImages(8, 4);
        // Each phase on a thread-pool thread of its own, as an actor's messages may be.
        await Task.Run(() => e.Forward(images, 8, StepMode.Joint, f));
        await Task.Run(() => e.Backward(f, s));
        var loss = await Task.Run(() => e.Apply(s, 8, new ScheduleValues(1, 0.1)));
        Assert.Equal(8, loss.Samples);
        Assert.False(double.IsNaN(loss.Total));
    }
}
