using SkiaSharp;

namespace Dnm.Core.Tests.Visual;

/// <summary>
/// How far apart two colours look: CIEDE2000 in CIELAB (D65), and sRGB colours as people with a full red or green
/// colour deficiency see them (Machado, Oliveira and Fernandes 2009, severity 1, applied to linear RGB).
/// </summary>
internal static class ColourVision
{
    private static readonly double[,] Deuteranopia = { { 0.367322, 0.860646, -0.227968 }, { 0.280085, 0.672501, 0.047413 }, { -0.011820, 0.042940, 0.968881 } };
    private static readonly double[,] Protanopia = { { 0.152286, 1.052583, -0.204868 }, { 0.114503, 0.786281, 0.099216 }, { -0.003882, -0.048116, 1.051998 } };

    public static readonly (string Name, Func<SKColor, SKColor> Simulate)[] Deficiencies =
    [
        ("deuteranopia", c => Simulate(c, Deuteranopia)),
        ("protanopia", c => Simulate(c, Protanopia)),
    ];

    private static double ToLinear(byte c)
    {
        var v = c / 255.0;
        return v <= 0.04045 ? v / 12.92 : Math.Pow((v + 0.055) / 1.055, 2.4);
    }

    private static byte ToSrgb(double v)
    {
        v = Math.Clamp(v, 0, 1);
        var s = v <= 0.0031308 ? 12.92 * v : 1.055 * Math.Pow(v, 1 / 2.4) - 0.055;
        return (byte)Math.Round(s * 255);
    }

    private static SKColor Simulate(SKColor c, double[,] m)
    {
        double[] rgb = [ToLinear(c.Red), ToLinear(c.Green), ToLinear(c.Blue)];
        double Row(int r) => m[r, 0] * rgb[0] + m[r, 1] * rgb[1] + m[r, 2] * rgb[2];
        return new SKColor(ToSrgb(Row(0)), ToSrgb(Row(1)), ToSrgb(Row(2)));
    }

    private static (double L, double A, double B) Lab(SKColor c)
    {
        double r = ToLinear(c.Red), g = ToLinear(c.Green), b = ToLinear(c.Blue);
        var x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
        var y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        var z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
        static double F(double t) => t > 0.008856 ? Math.Cbrt(t) : 7.787 * t + 16.0 / 116;
        return (116 * F(y) - 16, 500 * (F(x) - F(y)), 200 * (F(y) - F(z)));
    }

    /// <summary>The CIEDE2000 colour difference (Sharma, Wu and Dalal's formulation).</summary>
    public static double Ciede2000(SKColor first, SKColor second) => Ciede2000(Lab(first), Lab(second));

    public static double Ciede2000((double L, double A, double B) first, (double L, double A, double B) second)
    {
        var (l1, a1, b1) = first;
        var (l2, a2, b2) = second;
        static double Rad(double degrees) => degrees * Math.PI / 180;
        static double Deg(double radians) => radians * 180 / Math.PI;
        var cBar = (Math.Sqrt(a1 * a1 + b1 * b1) + Math.Sqrt(a2 * a2 + b2 * b2)) / 2;
        var g = 0.5 * (1 - Math.Sqrt(Math.Pow(cBar, 7) / (Math.Pow(cBar, 7) + Math.Pow(25, 7))));
        double a1p = (1 + g) * a1, a2p = (1 + g) * a2;
        double c1p = Math.Sqrt(a1p * a1p + b1 * b1), c2p = Math.Sqrt(a2p * a2p + b2 * b2);
        double h1p = (Deg(Math.Atan2(b1, a1p)) + 360) % 360, h2p = (Deg(Math.Atan2(b2, a2p)) + 360) % 360;
        var dL = l2 - l1;
        var dC = c2p - c1p;
        var dh = c1p * c2p == 0 ? 0 : h2p - h1p > 180 ? h2p - h1p - 360 : h2p - h1p < -180 ? h2p - h1p + 360 : h2p - h1p;
        var dH = 2 * Math.Sqrt(c1p * c2p) * Math.Sin(Rad(dh / 2));
        var lBar = (l1 + l2) / 2;
        var cBarP = (c1p + c2p) / 2;
        var hBar = c1p * c2p == 0 ? h1p + h2p
            : Math.Abs(h1p - h2p) <= 180 ? (h1p + h2p) / 2
            : h1p + h2p < 360 ? (h1p + h2p + 360) / 2 : (h1p + h2p - 360) / 2;
        var t = 1 - 0.17 * Math.Cos(Rad(hBar - 30)) + 0.24 * Math.Cos(Rad(2 * hBar)) + 0.32 * Math.Cos(Rad(3 * hBar + 6)) - 0.20 * Math.Cos(Rad(4 * hBar - 63));
        var dTheta = 30 * Math.Exp(-Math.Pow((hBar - 275) / 25, 2));
        var rC = 2 * Math.Sqrt(Math.Pow(cBarP, 7) / (Math.Pow(cBarP, 7) + Math.Pow(25, 7)));
        var sL = 1 + 0.015 * (lBar - 50) * (lBar - 50) / Math.Sqrt(20 + (lBar - 50) * (lBar - 50));
        var sC = 1 + 0.045 * cBarP;
        var sH = 1 + 0.015 * cBarP * t;
        var rT = -Math.Sin(Rad(2 * dTheta)) * rC;
        return Math.Sqrt(Math.Pow(dL / sL, 2) + Math.Pow(dC / sC, 2) + Math.Pow(dH / sH, 2) + rT * (dC / sC) * (dH / sH));
    }
}
