using Dnm.Core.Training;

namespace Dnm.Core.Tests.Training;

public class MicroBatchesSpec
{
    [Theory]
    [InlineData(256, 64, 4)]
    [InlineData(256, 62, 8)]   // ⌈256/62⌉ = 5 → the next power of two
    [InlineData(13, 4, 4)]
    [InlineData(1, 64, 1)]
    [InlineData(5, 1, 8)]      // more micro-batches than samples: three stay empty
    public void A_batch_is_a_power_of_two_of_micro_batches_no_larger_than_the_bound(int batch, int size, int expected)
    {
        var micro = new MicroBatches(size);
        Assert.Equal(expected, micro.Count(batch));
        var ranges = Enumerable.Range(0, expected).Select(i => micro.Range(batch, i)).ToArray();
        Assert.Equal(0, ranges[0].Start);
        for (var i = 1; i < ranges.Length; i++) Assert.Equal(ranges[i - 1].Start + ranges[i - 1].Length, ranges[i].Start);
        Assert.Equal(batch, ranges.Sum(r => r.Length));
        Assert.All(ranges, r => Assert.InRange(r.Length, batch / expected, Math.Min(size, batch / expected + 1)));
    }

    [Fact]
    public void Ranks_take_contiguous_micro_batches_that_cover_the_batch_once_for_every_world()
    {
        var micro = new MicroBatches(4);
        foreach (var batch in new[] { 1, 7, 13, 32, 33 })
            for (var world = 1; world <= 10; world++)
            {
                var next = 0;
                var nextSample = 0;
                for (var rank = 0; rank < world; rank++)
                {
                    var (first, count) = micro.RankRange(batch, rank, world);
                    Assert.Equal(next, first);
                    next += count;
                    var (start, length) = micro.SampleRange(batch, rank, world);
                    Assert.Equal(nextSample, start);
                    nextSample += length;
                    Assert.Equal(Enumerable.Range(first, count).Sum(i => micro.Range(batch, i).Length), length);
                }
                Assert.Equal(micro.Count(batch), next);
                Assert.Equal(batch, nextSample);
            }
    }

    [Theory]
    [InlineData(0, 8, new[] { 0, 8 })]
    [InlineData(0, 3, new[] { 0, 2, 2, 1 })]
    [InlineData(3, 3, new[] { 3, 1, 4, 2 })]
    [InlineData(6, 2, new[] { 6, 2 })]
    [InlineData(5, 0, new int[0])]
    public void Blocks_are_aligned_powers_of_two_that_cover_the_range(int first, int count, int[] expected)
    {
        var blocks = FixedOrderSum.Blocks(first, count);
        Assert.Equal(expected, blocks.SelectMany(b => new[] { b.Start, b.Size }).ToArray());
        Assert.All(blocks, b => Assert.Equal(0, b.Start % b.Size));
    }

    [Fact]
    public void Every_world_sums_to_the_same_bits_as_one_process()
    {
        // Values of very different magnitudes, so that any other order of the additions would round differently.
        var rng = new Random(17);
        const int batch = 29, length = 41;
        var micro = new MicroBatches(3); // 16 micro-batches
        var leaves = Enumerable.Range(0, micro.Count(batch))
            .Select(_ => Enumerable.Range(0, length).Select(_ => (float)((rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-6, 7)))).ToArray())
            .ToArray();
        float[] SumAs(int world)
        {
            var contributions = new Memory<float>[world];
            for (var rank = 0; rank < world; rank++)
            {
                // What a rank sends: the tree sum of each of its blocks, from its own leaves.
                var (first, count) = micro.RankRange(batch, rank, world);
                var blocks = FixedOrderSum.Blocks(first, count);
                var local = leaves.Skip(first).Take(count).Select(l => l.ToArray()).ToArray();
                var sizes = Enumerable.Repeat(1, count).ToArray();
                var sent = new float[blocks.Count * length];
                for (var b = 0; b < blocks.Count; b++)
                {
                    FixedOrderSum.Reduce(i => local[i], sizes, blocks[b].Start - first, blocks[b].Size);
                    local[blocks[b].Start - first].CopyTo(sent, b * length);
                }
                contributions[rank] = sent;
            }
            var sum = new float[length];
            micro.SumContributions(batch, contributions, sum);
            return sum;
        }
        var one = SumAs(1);
        for (var world = 2; world <= 20; world++) Assert.Equal(one, SumAs(world));
        // And the tree is not the sequential sum (the test would prove nothing if every order gave these bits).
        var sequential = new float[length];
        foreach (var l in leaves) FixedOrderSum.Add(sequential, l);
        Assert.NotEqual(one, sequential);
    }

    [Fact]
    public void A_contribution_of_the_wrong_size_is_refused_naming_the_rank()
    {
        var micro = new MicroBatches(4);
        var e = Assert.Throws<ArgumentException>(() => micro.SumContributions(16, [new float[3], new float[4]], new float[3]));
        Assert.Contains("rank 1 of 2", e.Message);
    }

    [Theory]
    [InlineData(0, 1, 64)]              // no buffer worth bounding: the automatic ceiling
    [InlineData(0, 784_000, 64)]        // the conv model on MNIST: 48 MB / 784 kB
    [InlineData(0, 3_000_000, 16)]      // larger images: what fits under the bound
    [InlineData(24, 784_000, 24)]       // configured
    public void The_automatic_size_keeps_the_step_buffer_under_its_bound(int configured, long bytesPerSample, int expected)
    {
        Assert.Equal(expected, MicroBatches.For(configured, bytesPerSample, 48L << 20).MaxSize);
    }
}
