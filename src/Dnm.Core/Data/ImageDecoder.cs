using SkiaSharp;

namespace Dnm.Core.Data;

/// <summary>Decodes one image file into bytes laid out C×H×W at a target shape.</summary>
internal static class ImageDecoder
{
    /// <summary>False when the file is not a decodable image; nothing else is reported because the caller decides fail or skip.</summary>
    public static bool TryDecode(string path, ImageShape shape, Span<byte> destination)
    {
        using var codec = SKCodec.Create(path);
        if (codec is null || codec.Info.Width <= 0 || codec.Info.Height <= 0)
            return false;

        // Decode straight into RGBA so that gray, palette and RGB sources all take one conversion path below.
        var decoded = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var full = new SKBitmap(decoded);
        if (codec.GetPixels(decoded, full.GetPixels()) != SKCodecResult.Success)
            return false;

        var target = new SKImageInfo(shape.Width, shape.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var resized = decoded.Width == shape.Width && decoded.Height == shape.Height
            ? null
            : full.Resize(target, SKFilterQuality.High);
        var bitmap = resized ?? full;
        if (bitmap.Width != shape.Width || bitmap.Height != shape.Height)
            return false;

        ReadOnlySpan<byte> rgba = bitmap.GetPixelSpan();
        int plane = shape.Height * shape.Width;
        for (int i = 0; i < plane; i++)
        {
            byte r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
            if (shape.Channels == 1)
            {
                // Rec. 601 luma, the same weights as PIL's convert("L"), so folder data matches common tooling.
                destination[i] = (byte)((299 * r + 587 * g + 114 * b + 500) / 1000);
            }
            else
            {
                destination[i] = r;
                destination[plane + i] = g;
                destination[2 * plane + i] = b;
            }
        }
        return true;
    }
}
