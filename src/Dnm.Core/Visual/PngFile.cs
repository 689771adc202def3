using System.Runtime.InteropServices;
using Dnm.Core.IO;
using SkiaSharp;

namespace Dnm.Core.Visual;

/// <summary>Turns pixel buffers into bitmaps and bitmaps into PNG files.</summary>
internal static class PngFile
{
    /// <summary>Encodes <paramref name="bitmap"/> as PNG and writes it atomically, so a viewer polling the file never reads half of it.</summary>
    public static void Save(SKBitmap bitmap, string path)
    {
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode a {bitmap.Width}x{bitmap.Height} PNG.");
        using var file = new AtomicFileWriter(path);
        data.SaveTo(file.Stream);
        file.Commit();
    }

    /// <summary>An opaque bitmap from tightly packed RGBA bytes (4 per pixel, rows top to bottom).</summary>
    public static SKBitmap FromRgba(byte[] rgba, int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var pixels = bitmap.GetPixels();
        // The bitmap may pad its rows, so copy row by row rather than in one block.
        for (var y = 0; y < height; y++)
            Marshal.Copy(rgba, y * width * 4, pixels + y * bitmap.RowBytes, width * 4);
        return bitmap;
    }

    /// <summary>A canvas-backed white bitmap for drawings with text.</summary>
    public static SKBitmap White(int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        bitmap.Erase(SKColors.White);
        return bitmap;
    }

    /// <summary>The integer factor that makes an image of <paramref name="width"/> pixels at least <paramref name="minWidth"/> wide.</summary>
    public static int UpscaleFactor(int width, int minWidth) => Math.Max(1, (minWidth + width - 1) / width);
}
