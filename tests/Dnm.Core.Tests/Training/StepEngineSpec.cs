using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Som;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

public class StepEngineSpec
{
    internal static readonly DnmConfig Small = new()
    {
        Encoder = EncoderKind.Conv, Lattice = LatticeKind.Rect, SigmaFloor = 0.3, SmoothWeight = 0,
        Channels = [4, 4, 2], Kernel = 3, Latent = 8, Map = "4x5", BatchSize = 32, Seed = 7, LearningRate = 1e-3,
    };
    internal static readonly ImageShape Shape = new(1, 12, 12);

    internal static float[] SyntheticImages(int count, int seed)
    {
        // Blobs at a position that depends on the sample: structured enough for the map to organise.
        var rng = new Random(seed);
        var data = new float[count * Shape.Pixels];
        for (int i = 0; i < count; i++)
        {
            int cx = rng.Next(2, 10), cy = rng.Next(2, 10);
            for (int y = 0; y < 12; y++)
                for (int x = 0; x < 12; x++)
                    data[i * Shape.Pixels + y * 12 + x] = MathF.Exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 6f);
        }
        return data;
    }

    private static void SeedPrototypes(StepEngine e)
    {
        using var scope = NewDisposeScope();
        e.Som.SetPrototypes(randn(new long[] { e.Som.Nodes, e.Som.Dim }, generator: new TorchSharp.torch.Generator(3)) * 0.5f);
    }

    [Theory]
    [InlineData("conv", 2)]
    [InlineData("conv", 3)]
    [InlineData("mlp", 2)]
    [InlineData("mlp", 4)]
    [InlineData("conv", 8)]
    public void Ranks_of_any_world_end_bitwise_equal_to_one_engine_on_the_whole_batch(string encoder, int world)
    {
        // Micro-batches of 4: a batch of 32 is 8 of them, a last batch of 13 is 4 (so a world of 8 has idle ranks there).
        const int steps = 12;
        var config = Small with { Encoder = KebabEnum.Parse<EncoderKind>("encoder", encoder), Hidden = [48, 24], MicroBatch = 4 };
        using var whole = new StepEngine(config, Shape, CPU, 32);
        var ranks = Enumerable.Range(0, world).Select(_ => new StepEngine(config with { Threads = 1 }, Shape, CPU, 32)).ToArray();
        try
        {
            foreach (var e in ranks.Prepend(whole)) SeedPrototypes(e);
            var layout = whole.Layout;
            var pixels = Shape.Pixels;
            var schedule = new SomSchedule(2, 0.3, 50, 0.5);
            var fAll = new float[layout.Nodes];
            var sAll = new float[layout.Length];
            for (int step = 0; step < steps; step++)
            {
                var b = step % 3 == 2 ? 13 : 32;
                var images = SyntheticImages(b, 100 + step);
                var mode = step < 4 ? StepMode.Autoencoder : StepMode.Joint;
                var sched = new ScheduleValues(schedule.Sigma(step), schedule.Eta(step));

                whole.Forward(images, b, mode, fAll);
                whole.Backward(fAll, sAll);
                var lossWhole = whole.Apply(sAll, b, sched);

                var slices = Enumerable.Range(0, world).Select(r => new RankSlice(b, r, world)).ToArray();
                var fBlocks = slices.Select(sl => new float[ranks[0].ContributionLength(sl, layout.Nodes)]).ToArray();
                for (var r = 0; r < world; r++)
                {
                    var (start, length) = ranks[r].MicroBatches.SampleRange(b, r, world);
                    ranks[r].Forward(images.AsSpan(start * pixels, length * pixels), ReadOnlySpan<float>.Empty, slices[r], mode, fBlocks[r]);
                }
                var f = new float[layout.Nodes];
                if (mode == StepMode.Joint) whole.MicroBatches.SumContributions(b, fBlocks.Select(x => (Memory<float>)x).ToArray(), f);
                var sBlocks = slices.Select(sl => new float[ranks[0].ContributionLength(sl, layout.Length)]).ToArray();
                for (var r = 0; r < world; r++) ranks[r].Backward(f, sBlocks[r]);
                var s = new float[layout.Length];
                whole.MicroBatches.SumContributions(b, sBlocks.Select(x => (Memory<float>)x).ToArray(), s);
                Assert.Equal(sAll, s); // the reduced statistics are the same bits
                foreach (var e in ranks)
                {
                    var loss = e.Apply(s, b, sched);
                    Assert.Equal(lossWhole, loss);
                }
            }
            // Every replica, whatever its rank, world or thread count, holds the single engine's state to the bit.
            foreach (var e in ranks) Assert.Equal(EngineState.Checksum(whole), EngineState.Checksum(e));
        }
        finally
        {
            foreach (var e in ranks) e.Dispose();
        }
    }

    [Fact]
    public void Joint_training_lowers_the_loss_and_moves_prototypes_towards_the_data()
    {
        using var e = new StepEngine(Small, Shape, CPU, 32);
        SeedPrototypes(e);
        var f = new float[e.Layout.Nodes];
        var s = new float[e.Layout.Length];
        var schedule = new SomSchedule(2, 0.3, 100, 0.5);
        double first = 0, last = 0;
        for (int step = 0; step < 60; step++)
        {
            var images = SyntheticImages(32, step % 4);
            e.Forward(images, 32, StepMode.Joint, f);
            Assert.Equal(32, f.Sum(), 3); // soft assignments are distributions: Σ_j q_ij = 1 per sample
            e.Backward(f, s);
            var loss = e.Apply(s, 32, new ScheduleValues(schedule.Sigma(step), schedule.Eta(step)));
            Assert.False(double.IsNaN(loss.Total));
            if (step == 0) first = loss.Total;
            last = loss.Total;
        }
        Assert.True(last < first, $"loss went from {first} to {last}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void The_smoothing_part_should_be_the_mean_squared_distance_to_the_targets_and_count_in_the_total(int threads)
    {
        const int b = 10;
        const double lambda = 2.5;
        var smoothing = Small with { SmoothWeight = lambda, Threads = threads };
        using var e = new StepEngine(smoothing, Shape, CPU, b);
        using var plain = new StepEngine(Small with { Threads = threads }, Shape, CPU, b);
        SeedPrototypes(e);
        SeedPrototypes(plain);
        var images = SyntheticImages(b, 42);
        var targets = new float[b * Small.Latent];
        var rng = new Random(5);
        for (int i = 0; i < targets.Length; i++) targets[i] = (float)rng.NextDouble() - 0.5f;

        double expected = 0;
        using (var z = e.Embed(images, b))
        {
            var zs = z.data<float>().ToArray();
            for (int i = 0; i < zs.Length; i++) expected += (zs[i] - targets[i]) * (double)(zs[i] - targets[i]);
            expected /= b;
        }
        var f = new float[e.Layout.Nodes];
        var s = new float[e.Layout.Length];
        e.Forward(images, targets, new RankSlice(b, 0, 1), StepMode.Joint, f);
        e.Backward(f, s);
        var loss = e.Apply(s, b, new ScheduleValues(1, 0.1));
        plain.Forward(images, b, StepMode.Joint, f);
        plain.Backward(f, s);
        var without = plain.Apply(s, b, new ScheduleValues(1, 0.1));

        Assert.NotNull(loss.Smoothing);
        Assert.Equal(expected, loss.Smoothing!.Value, expected * 1e-5);
        Assert.Null(without.Smoothing); // the term is off: no part, rather than a zero that reads as a perfect fit
        Assert.Equal(without.Kl, loss.Kl, 6); // the same seed builds the same model, so only the new part differs
        Assert.Equal(without.Total + lambda * expected, loss.Total, (without.Total + lambda * expected) * 1e-5);
    }

    [Fact]
    public void Apply_without_Forward_is_an_error()
    {
        using var e = new StepEngine(Small, Shape, CPU, 4);
        Assert.Throws<InvalidOperationException>(() => e.Apply(new float[e.Layout.Length], 4, new ScheduleValues(1, 0.1)));
    }

    internal static double RelativeError(float[] a, float[] b)
    {
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++) { num += (a[i] - b[i]) * (double)(a[i] - b[i]); den += a[i] * (double)a[i]; }
        return Math.Sqrt(num / Math.Max(den, 1e-30));
    }
}
