using SkiaSharp;

namespace Dnm.Core.Visual;

/// <summary>Colours shared by the map renderings.</summary>
public static class Palettes
{
    /// <summary>
    /// Colours for class labels, label c getting colour c mod 20. The first ten, enough for MNIST, are Okabe and Ito's
    /// eight colours for colour-blind readers (orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple,
    /// black) and Paul Tol's wine and indigo from his schemes of the same purpose: any two of them differ by at least 21
    /// CIEDE2000 units, and by at least 11 as people with deuteranopia or protanopia see them (Trubetskoy's palette, used
    /// before, had blue and purple for 3 and 5 and pairs only 1.3 apart to a protanope). Labels 10–19 get ten more
    /// colours, chosen to be as far as possible from those and from each other; past ten classes no palette keeps every
    /// pair apart.
    /// </summary>
    public static IReadOnlyList<SKColor> Qualitative { get; } =
    [
        new(0xE6, 0x9F, 0x00), new(0x56, 0xB4, 0xE9), new(0x00, 0x9E, 0x73), new(0xF0, 0xE4, 0x42), new(0x00, 0x72, 0xB2),
        new(0xD5, 0x5E, 0x00), new(0xCC, 0x79, 0xA7), new(0x00, 0x00, 0x00), new(0x88, 0x22, 0x55), new(0x33, 0x22, 0x88),
        new(0x66, 0x11, 0x00), new(0x99, 0x99, 0x33), new(0xE1, 0x57, 0x59), new(0x8C, 0xD1, 0x7D), new(0xFA, 0xBF, 0xD2),
        new(0x86, 0xBC, 0xB6), new(0x9C, 0x75, 0x5F), new(0x11, 0x77, 0x33), new(0xAA, 0x44, 0x99), new(0x99, 0x77, 0x00),
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
