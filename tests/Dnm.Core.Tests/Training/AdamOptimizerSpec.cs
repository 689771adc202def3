using Dnm.Core.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

public class AdamOptimizerSpec
{
    private static Parameter[] Parameters(int seed)
    {
        var generator = new Generator((ulong)seed);
        // Sizes that straddle the work-item size and the vector width.
        return new long[] { 7, AdamOptimizer.HostChunk + 13, 64 }
            .Select(n => new Parameter(randn(new[] { n }, generator: generator))).ToArray();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void The_fused_host_update_equals_torchs_update_to_float_rounding_and_is_the_same_bits_for_any_thread_count(int threads)
    {
        var reference = Parameters(5);
        var fused = Parameters(5);
        var single = Parameters(5);
        var decay = new[] { true, true, false };
        const double beta = 1e-3;
        using var torchAdam = new AdamOptimizer(reference, 1e-2);
        using var hostAdam = new AdamOptimizer(fused, 1e-2);
        using var oneThread = new AdamOptimizer(single, 1e-2);
        var generator = new Generator(9);
        for (var step = 0; step < 20; step++)
        {
            using var scope = NewDisposeScope();
            var flat = randn(new long[] { reference.Sum(p => p.numel()) }, generator: generator);
            long offset = 0;
            var grads = new Tensor[reference.Length];
            double expectedL2 = 0;
            for (var i = 0; i < reference.Length; i++)
            {
                var n = reference[i].numel();
                grads[i] = flat.narrow(0, offset, n).clone();
                if (decay[i])
                {
                    expectedL2 += reference[i].square().sum().item<float>();
                    grads[i] = grads[i] + reference[i].detach() * (2 * beta);
                }
                offset += n;
            }
            using (no_grad()) torchAdam.Step(grads);
            var l2 = hostAdam.StepOnHost(flat, decay, beta, (items, body) => Parallel(items, body, threads));
            oneThread.StepOnHost(flat, decay, beta, (items, body) => { for (var k = 0; k < items; k++) body(k); });
            Assert.Equal(expectedL2, l2, expectedL2 * 1e-5);
        }
        for (var i = 0; i < reference.Length; i++)
        {
            var err = StepEngineSpec.RelativeError(reference[i].data<float>().ToArray(), fused[i].data<float>().ToArray());
            Assert.True(err < 1e-5, $"parameter {i}: relative error {err:E2}");
            Assert.Equal(single[i].data<float>().ToArray(), fused[i].data<float>().ToArray());
        }
        Assert.Equal(20, hostAdam.Steps);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(AdamOptimizer.HostChunk)]
    [InlineData(AdamOptimizer.HostChunk + 13)]
    public void The_sum_of_squares_is_its_eight_accumulator_definition_to_the_bit_and_the_sum_to_rounding(int length)
    {
        var random = new Random(length + 1);
        // Magnitudes over six decades, so the order of the adds shows in the last bits.
        var x = Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 3)))).ToArray();
        var fast = AdamOptimizer.SumOfSquares(x);
        Assert.Equal(BitConverter.DoubleToInt64Bits(AdamOptimizer.SumOfSquaresScalar(x)), BitConverter.DoubleToInt64Bits(fast));
        var sequential = x.Sum(v => (double)v * v);
        Assert.Equal(sequential, fast, Math.Max(sequential, 1e-300) * 1e-13);
        // A wrong accumulator (element 3 counted twice) is caught: the spec can fail.
        if (length >= 8)
        {
            var shifted = (float[])x.Clone();
            shifted[3] *= 2;
            Assert.NotEqual(fast, AdamOptimizer.SumOfSquares(shifted));
        }
    }

    private static void Parallel(int items, Action<int> body, int threads) =>
        System.Threading.Tasks.Parallel.For(0, threads, t => { for (var k = t; k < items; k += threads) body(k); });
}
