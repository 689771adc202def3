using SkiaSharp;

namespace Dnm.Core.Tests.Visual;

/// <summary>Reads rendered PNGs back with SkiaSharp's decoder.</summary>
internal static class PngAssert
{
    public static SKBitmap Decode(string path)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        return SKBitmap.Decode(path) ?? throw new Xunit.Sdk.XunitException($"{path} is not a decodable image");
    }

    public static void Colour(SKColor expected, SKBitmap bitmap, int x, int y, int tolerance = 0)
    {
        var actual = bitmap.GetPixel(x, y);
        var off = Math.Max(Math.Abs(expected.Red - actual.Red), Math.Max(Math.Abs(expected.Green - actual.Green), Math.Abs(expected.Blue - actual.Blue)));
        Assert.True(off <= tolerance, $"pixel ({x},{y}) is {actual}, expected {expected}");
    }

    /// <summary>Pixels in the rectangle darker than mid-grey on all channels: text strokes on a white background.</summary>
    public static int DarkPixels(SKBitmap bitmap, int left, int top, int right, int bottom)
    {
        var count = 0;
        for (var y = top; y < bottom; y++)
        {
            for (var x = left; x < right; x++)
            {
                var p = bitmap.GetPixel(x, y);
                if (p.Red < 100 && p.Green < 100 && p.Blue < 100)
                    count++;
            }
        }
        return count;
    }
}
