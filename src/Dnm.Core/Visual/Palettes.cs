using SkiaSharp;

namespace Dnm.Core.Visual;

/// <summary>Colours shared by the map renderings.</summary>
public static class Palettes
{
    /// <summary>
    /// Sasha Trubetskoy's "20 simple, distinct colours", without its grey (kept for empty nodes) and
    /// white (the background), plus black. Ordered so that the first ten, enough for MNIST, are the most
    /// distinct from each other. Label c gets colour c mod 20.
    /// </summary>
    public static IReadOnlyList<SKColor> Qualitative { get; } =
    [
        new(0xE6, 0x19, 0x4B), new(0x3C, 0xB4, 0x4B), new(0xFF, 0xE1, 0x19), new(0x43, 0x63, 0xD8),
        new(0xF5, 0x82, 0x31), new(0x91, 0x1E, 0xB4), new(0x42, 0xD4, 0xF4), new(0xF0, 0x32, 0xE6),
        new(0xBF, 0xEF, 0x45), new(0xFA, 0xBE, 0xD4), new(0x46, 0x99, 0x90), new(0xDC, 0xBE, 0xFF),
        new(0x9A, 0x63, 0x24), new(0xFF, 0xFA, 0xC8), new(0x80, 0x00, 0x00), new(0xAA, 0xFF, 0xC3),
        new(0x80, 0x80, 0x00), new(0xFF, 0xD8, 0xB1), new(0x00, 0x00, 0x75), new(0x00, 0x00, 0x00),
    ];

    /// <summary>Colour of a node that is no sample's BMU (label -1).</summary>
    public static SKColor Unassigned { get; } = new(0xA9, 0xA9, 0xA9);

    /// <summary>The colour for <paramref name="label"/>; negative labels are <see cref="Unassigned"/>.</summary>
    public static SKColor ForLabel(int label) =>
        label < 0 ? Unassigned : Qualitative[label % Qualitative.Count];

    // viridis(9) from matplotlib/viridisLite: perceptually uniform and readable in greyscale and by
    // colour-blind viewers, which is why it is used for continuous values such as the U-matrix.
    private static readonly SKColor[] ViridisStops =
    [
        new(0x44, 0x01, 0x54), new(0x47, 0x2D, 0x7B), new(0x3B, 0x52, 0x8B), new(0x2C, 0x72, 0x8E),
        new(0x21, 0x90, 0x8C), new(0x27, 0xAD, 0x81), new(0x5D, 0xC8, 0x63), new(0xAA, 0xDC, 0x32),
        new(0xFD, 0xE7, 0x25),
    ];

    /// <summary>Viridis at <paramref name="t"/> in [0,1] (clamped; NaN maps to 0), interpolated linearly between 9 stops.</summary>
    public static SKColor Viridis(double t)
    {
        t = double.IsNaN(t) ? 0 : Math.Clamp(t, 0, 1);
        var position = t * (ViridisStops.Length - 1);
        var i = Math.Min((int)position, ViridisStops.Length - 2);
        var f = position - i;
        SKColor a = ViridisStops[i], b = ViridisStops[i + 1];
        return new SKColor(Lerp(a.Red, b.Red, f), Lerp(a.Green, b.Green, f), Lerp(a.Blue, b.Blue, f));
    }

    private static byte Lerp(byte a, byte b, double f) => (byte)Math.Round(a + (b - a) * f);
}
