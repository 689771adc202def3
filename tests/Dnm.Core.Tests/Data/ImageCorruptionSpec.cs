using Dnm.Core.Config;
using Dnm.Core.Data;

namespace Dnm.Core.Tests.Data;

public class ImageCorruptionSpec
{
    private const int Pixels = 400;

    private static float[] Image(int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, Pixels).Select(_ => (float)rng.NextDouble()).ToArray();
    }

    private static float[] Corrupt(ImageCorruption c, float[] clean, int epoch, int index)
    {
        var noisy = new float[clean.Length];
        c.Corrupt(clean, noisy, epoch, index);
        return noisy;
    }

    [Theory]
    [InlineData("gaussian:0.3")]
    [InlineData("masking:0.25")]
    public void The_noise_is_a_pure_function_of_seed_epoch_and_index(string spec)
    {
        var c = new ImageCorruption(NoiseSpec.Parse("denoise", spec), 5, Pixels);
        var clean = Image(1);
        var once = Corrupt(c, clean, 2, 17);
        // Again, and from a fresh instance: bit for bit.
        Assert.Equal(once, Corrupt(c, clean, 2, 17));
        Assert.Equal(once, Corrupt(new ImageCorruption(NoiseSpec.Parse("denoise", spec), 5, Pixels), clean, 2, 17));
        // Another epoch, another index, another seed: other noise.
        Assert.NotEqual(once, Corrupt(c, clean, 3, 17));
        Assert.NotEqual(once, Corrupt(c, clean, 2, 18));
        Assert.NotEqual(once, Corrupt(new ImageCorruption(NoiseSpec.Parse("denoise", spec), 6, Pixels), clean, 2, 17));
        // A batch gets each sample's own noise, whatever its position in the batch (any worker's shard).
        var batch = Image(1).Concat(Image(2)).ToArray();
        var noisy = new float[batch.Length];
        c.Apply(batch, noisy, [17, 4], 2);
        Assert.Equal(once, noisy[..Pixels]);
        var swapped = Image(2).Concat(Image(1)).ToArray();
        c.Apply(swapped, noisy, [4, 17], 2);
        Assert.Equal(once, noisy[Pixels..]);
        // The clean input is left as it was (it stays the reconstruction target).
        Assert.Equal(Image(1), clean);
    }

    [Fact]
    public void Gaussian_noise_has_the_asked_deviation_and_masking_zeroes_the_asked_share()
    {
        var clean = Image(3);
        var gaussian = new ImageCorruption(new NoiseSpec(NoiseKind.Gaussian, 0.5), 1, Pixels);
        var masking = new ImageCorruption(new NoiseSpec(NoiseKind.Masking, 0.3), 1, Pixels);
        double sum = 0, squares = 0;
        int masked = 0, kept = 0, n = 0;
        for (int index = 0; index < 50; index++)
        {
            var g = Corrupt(gaussian, clean, 0, index);
            var m = Corrupt(masking, clean, 0, index);
            for (int p = 0; p < Pixels; p++, n++)
            {
                var e = g[p] - clean[p];
                sum += e;
                squares += e * e;
                if (m[p] == 0) masked++;
                else if (m[p] == clean[p]) kept++;
            }
        }
        Assert.InRange(sum / n, -0.02, 0.02);
        Assert.InRange(Math.Sqrt(squares / n), 0.48, 0.52);
        Assert.InRange((double)masked / n, 0.28, 0.32);
        Assert.Equal(n, masked + kept);
    }
}
