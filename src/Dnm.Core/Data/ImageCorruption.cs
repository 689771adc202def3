using Dnm.Core.Config;

namespace Dnm.Core.Data;

/// <summary>
/// The denoising autoencoder's corruption x̃ of a training image x (<see cref="DnmConfig.Denoise"/>): Gaussian noise
/// x + σ·N(0, 1) per pixel, or masking (each pixel 0 with probability p). Sample <c>index</c>'s noise in data epoch
/// <c>epoch</c> is a pure function of (seed, epoch, index), as <see cref="ImageAugmenter"/>'s transforms are: a sample is
/// corrupted alike whichever worker holds it, so N workers still equal one process, and a resumed run sees the same noise.
/// </summary>
public sealed class ImageCorruption
{
    private readonly ulong seed;
    private readonly int pixels;

    public ImageCorruption(NoiseSpec noise, ulong seed, int pixels)
    {
        ArgumentNullException.ThrowIfNull(noise);
        if (noise.Problem("denoise") is { } problem) throw new ArgumentException(problem, nameof(noise));
        Noise = noise;
        this.seed = seed;
        this.pixels = pixels;
    }

    public NoiseSpec Noise { get; }

    public bool Enabled => Noise.Enabled;

    /// <summary>
    /// Writes the corrupted copy of each image of <paramref name="clean"/> (image i is dataset sample
    /// <paramref name="indices"/>[i]) into <paramref name="corrupted"/>.
    /// </summary>
    public void Apply(ReadOnlySpan<float> clean, Span<float> corrupted, ReadOnlySpan<int> indices, int dataEpoch)
    {
        if (clean.Length != indices.Length * pixels || corrupted.Length < clean.Length)
            throw new ArgumentException($"{indices.Length} images of {pixels} pixels need {indices.Length * pixels} floats, got {clean.Length} and room for {corrupted.Length}");
        for (int i = 0; i < indices.Length; i++)
            Corrupt(clean.Slice(i * pixels, pixels), corrupted.Slice(i * pixels, pixels), dataEpoch, indices[i]);
    }

    /// <summary>One image: <paramref name="corrupted"/> receives x̃ of sample <paramref name="index"/> in <paramref name="dataEpoch"/>.</summary>
    public void Corrupt(ReadOnlySpan<float> clean, Span<float> corrupted, int dataEpoch, int index)
    {
        // Hash (seed, epoch, index), salted apart from the augmenter's, so that samples and epochs get unrelated draws.
        var rng = new SplitMix64(SplitMix64.Mix(seed ^ 0x3C6EF372FE94F82BUL) ^ SplitMix64.Mix(((ulong)(uint)dataEpoch << 32) | (uint)index));
        var amount = Noise.Amount;
        switch (Noise.Kind)
        {
            case NoiseKind.Gaussian:
                for (int p = 0; p < clean.Length; p += 2)
                {
                    // Box–Muller: two independent standard normals from two uniforms in (0, 1].
                    double u1 = Unit(ref rng), u2 = Unit(ref rng);
                    double r = Math.Sqrt(-2 * Math.Log(u1)), a = 2 * Math.PI * u2;
                    corrupted[p] = (float)(clean[p] + amount * r * Math.Cos(a));
                    if (p + 1 < clean.Length) corrupted[p + 1] = (float)(clean[p + 1] + amount * r * Math.Sin(a));
                }
                break;
            case NoiseKind.Masking:
                for (int p = 0; p < clean.Length; p++) corrupted[p] = Unit(ref rng) <= amount ? 0f : clean[p];
                break;
            default:
                clean.CopyTo(corrupted);
                break;
        }
    }

    /// <summary>Uniform in (0, 1]: never 0, so its logarithm is finite.</summary>
    private static double Unit(ref SplitMix64 rng) => ((rng.NextUInt64() >> 11) + 1) * (1.0 / (1UL << 53));
}
