using System.Buffers;

namespace Dnm.Core.Data;

/// <summary>
/// Random affine augmentation of training images: a rotation by up to ±<see cref="RotationDegrees"/> about
/// the image centre and a translation by up to ±<see cref="ShiftFraction"/> of the width and height, sampled
/// bilinearly with zeros outside the image.
/// <para>
/// Each image's transform is a pure function of (seed, data epoch, dataset index): a sample gets the same
/// transform whichever worker holds it and however the batch is sharded, so N workers still equal one
/// process, and a resumed run sees the same images as an uninterrupted one.
/// </para>
/// </summary>
/// <remarks>One instance per training thread: it keeps one image plane of scratch memory (<see cref="Apply"/> on several threads rents one per thread).</remarks>
public sealed class ImageAugmenter
{
    private readonly ImageShape shape;
    private readonly ulong seed;
    private readonly float[] scratch;

    public ImageAugmenter(ImageShape shape, double rotationDegrees, double shiftFraction, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (!(rotationDegrees >= 0 && rotationDegrees <= 180))
            throw new ArgumentOutOfRangeException(nameof(rotationDegrees), rotationDegrees, "Rotation must be in [0, 180] degrees.");
        if (!(shiftFraction >= 0 && shiftFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(shiftFraction), shiftFraction, "Shift must be a fraction in [0, 1).");
        this.shape = shape;
        this.seed = seed;
        RotationDegrees = rotationDegrees;
        ShiftFraction = shiftFraction;
        scratch = new float[shape.Height * shape.Width];
    }

    /// <summary>The augmentation a run's configuration asks for (its seed, rotation and shift ranges).</summary>
    public static ImageAugmenter For(Config.DnmConfig config, ImageShape shape) =>
        new(shape, config.AugmentRotation, config.AugmentShift, config.Seed);

    public double RotationDegrees { get; }

    public double ShiftFraction { get; }

    /// <summary>False when both ranges are zero: <see cref="Apply"/> then leaves the images untouched.</summary>
    public bool Enabled => RotationDegrees > 0 || ShiftFraction > 0;

    /// <summary>The transform of one sample: rotation in radians, shift in pixels (x right, y down).</summary>
    public readonly record struct Transform(double Radians, double ShiftX, double ShiftY);

    /// <summary>The transform that sample <paramref name="index"/> gets in data epoch <paramref name="dataEpoch"/>.</summary>
    public Transform For(int dataEpoch, int index)
    {
        // Hash (seed, epoch, index) so that neighbouring samples and epochs get unrelated draws.
        var rng = new SplitMix64(SplitMix64.Mix(seed ^ 0xA0761D6478BD642FUL)
            ^ SplitMix64.Mix(((ulong)(uint)dataEpoch << 32) | (uint)index));
        var radians = Uniform(ref rng) * RotationDegrees * Math.PI / 180;
        var shiftX = Uniform(ref rng) * ShiftFraction * shape.Width;
        var shiftY = Uniform(ref rng) * ShiftFraction * shape.Height;
        return new Transform(radians, shiftX, shiftY);
    }

    /// <summary>
    /// Transforms images in place: image i of <paramref name="pixels"/> (C×H×W floats) is dataset sample
    /// <paramref name="indices"/>[i]. The images are spread over the cores, as decoding is: each image's transform depends
    /// on (seed, epoch, index) alone, so the result is the same for any thread count.
    /// </summary>
    public void Apply(Span<float> pixels, ReadOnlySpan<int> indices, int dataEpoch)
    {
        if (!Enabled) return;
        var p = shape.Pixels;
        if (pixels.Length != indices.Length * p)
            throw new ArgumentException($"{indices.Length} images of {shape} need {indices.Length * p} floats, got {pixels.Length}.", nameof(pixels));
        int threads = Math.Min(BatchBuffer.DecodeThreads, indices.Length);
        if (threads <= 1)
        {
            for (var i = 0; i < indices.Length; i++)
                Warp(pixels.Slice(i * p, p), For(dataEpoch, indices[i]), scratch);
            return;
        }
        var ids = indices.ToArray();
        unsafe
        {
            fixed (float* start = pixels)
            {
                var at = (nint)start;
                // One contiguous part of the batch per thread, each with scratch memory of its own.
                ParallelReads.For(threads, threads, part =>
                {
                    var own = ArrayPool<float>.Shared.Rent(scratch.Length);
                    try
                    {
                        for (int i = part * ids.Length / threads; i < (part + 1) * ids.Length / threads; i++)
                            Warp(new Span<float>((float*)at + (long)i * p, p), For(dataEpoch, ids[i]), own);
                    }
                    finally
                    {
                        ArrayPool<float>.Shared.Return(own);
                    }
                });
            }
        }
    }

    /// <summary>Applies <paramref name="t"/> to one C×H×W image in place.</summary>
    public void Warp(Span<float> image, Transform t) => Warp(image, t, scratch);

    private void Warp(Span<float> image, Transform t, float[] work)
    {
        int h = shape.Height, w = shape.Width, plane = h * w;
        double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
        // Output pixel o = R (s - c) + c + shift, so the source of o is s = R⁻¹ (o - c - shift) + c.
        double cos = Math.Cos(t.Radians), sin = Math.Sin(t.Radians);
        for (var c = 0; c < shape.Channels; c++)
        {
            var channel = image.Slice(c * plane, plane);
            channel.CopyTo(work);
            for (var y = 0; y < h; y++)
            {
                double dy = y - cy - t.ShiftY;
                for (var x = 0; x < w; x++)
                {
                    double dx = x - cx - t.ShiftX;
                    double sx = cos * dx + sin * dy + cx;
                    double sy = -sin * dx + cos * dy + cy;
                    channel[y * w + x] = Bilinear(work, w, h, sx, sy);
                }
            }
        }
    }

    private static float Bilinear(float[] source, int w, int h, double x, double y)
    {
        if (x <= -1 || y <= -1 || x >= w || y >= h) return 0f;
        int x0 = (int)Math.Floor(x), y0 = (int)Math.Floor(y);
        double fx = x - x0, fy = y - y0;
        double top = (1 - fx) * At(source, w, h, x0, y0) + fx * At(source, w, h, x0 + 1, y0);
        double bottom = (1 - fx) * At(source, w, h, x0, y0 + 1) + fx * At(source, w, h, x0 + 1, y0 + 1);
        return (float)((1 - fy) * top + fy * bottom);
    }

    private static double At(float[] source, int w, int h, int x, int y) =>
        (uint)x < (uint)w && (uint)y < (uint)h ? source[y * w + x] : 0.0;

    /// <summary>Uniform in [-1, 1).</summary>
    private static double Uniform(ref SplitMix64 rng) => (rng.NextUInt64() >> 11) * (2.0 / (1UL << 53)) - 1.0;
}
