using SkiaSharp;

namespace Dnm.Core.Data;

/// <summary>Why an encoded image was not decoded.</summary>
public enum DecodeFailure
{
    None,
    /// <summary>Not a PNG, JPEG or WebP image, or its data is broken.</summary>
    NotAnImage,
    /// <summary>It declares more pixels than the budget: refused from its header, before any pixel memory is allocated.</summary>
    TooManyPixels,
}

/// <summary>
/// Decodes one encoded image (PNG, JPEG, WebP: whatever SkiaSharp's codecs read) into bytes laid out C×H×W at a target
/// shape. The header is read first and checked against a pixel budget, so a decompression bomb (a small file that
/// declares 60000×60000 pixels) is refused before any large allocation.
/// </summary>
public static class ImageDecoder
{
    /// <summary>The default pixel budget (<c>max-image-pixels</c>): 40 megapixels, 160 MB of RGBA while it is resized.</summary>
    public const long DefaultMaxPixels = 40_000_000;

    /// <summary>A file's image; see <see cref="TryDecode(ReadOnlySpan{byte}, ImageShape, Span{byte}, long, out ImageHeader)"/>.</summary>
    public static DecodeFailure TryDecode(string path, ImageShape shape, Span<byte> destination, long maxPixels = DefaultMaxPixels)
    {
        byte[] encoded;
        try
        {
            encoded = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return DecodeFailure.NotAnImage;
        }
        return TryDecode(encoded, shape, destination, maxPixels, out _);
    }

    /// <summary>
    /// Decodes <paramref name="encoded"/> into <paramref name="destination"/> (shape.Pixels bytes): grayscale by Rec. 601
    /// luma or RGB planes, resized with a high-quality filter where the sizes differ, transparent pixels over black.
    /// Nothing is reported beyond the failure kind: the caller names the sample and decides fail or skip.
    /// </summary>
    public static DecodeFailure TryDecode(ReadOnlySpan<byte> encoded, ImageShape shape, Span<byte> destination, long maxPixels, out ImageHeader header)
    {
        header = default;
        if (encoded.IsEmpty) return DecodeFailure.NotAnImage;
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data);
        if (codec is null || codec.Info.Width <= 0 || codec.Info.Height <= 0)
            return DecodeFailure.NotAnImage;
        header = new ImageHeader(codec.Info.Width, codec.Info.Height);
        if ((long)codec.Info.Width * codec.Info.Height > maxPixels)
            return DecodeFailure.TooManyPixels;

        // JPEG decodes at 1/2, 1/4 or 1/8 scale almost for free: take the smallest scale still at least the target size,
        // so a large photo is not fully decoded only to be shrunk (the same idea as PIL's draft mode).
        var size = codec.Info.Size;
        if (codec.EncodedFormat == SKEncodedImageFormat.Jpeg && (size.Width > shape.Width || size.Height > shape.Height))
        {
            for (float scale = 0.125f; scale < 1f; scale *= 2)
            {
                var scaled = codec.GetScaledDimensions(scale);
                if (scaled.Width >= shape.Width && scaled.Height >= shape.Height) { size = scaled; break; }
            }
        }

        // Decode straight into RGBA so that gray, palette and RGB sources all take one conversion path below.
        var decoded = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var full = new SKBitmap(decoded);
        var result = codec.GetPixels(decoded, full.GetPixels());
        // An incomplete image (a truncated file) decodes the rows it has; it is still broken data.
        if (result != SKCodecResult.Success)
            return DecodeFailure.NotAnImage;

        var target = new SKImageInfo(shape.Width, shape.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var resized = decoded.Width == shape.Width && decoded.Height == shape.Height
            ? null
            : full.Resize(target, SKFilterQuality.High);
        var bitmap = resized ?? full;
        if (bitmap.Width != shape.Width || bitmap.Height != shape.Height)
            return DecodeFailure.NotAnImage;

        ReadOnlySpan<byte> rgba = bitmap.GetPixelSpan();
        int plane = shape.Height * shape.Width;
        if (shape.Channels == 1)
        {
            // Rec. 601 luma, the same weights as PIL's convert("L"), so folder data matches common tooling.
            for (int i = 0; i < plane; i++)
                destination[i] = (byte)((299 * rgba[4 * i] + 587 * rgba[4 * i + 1] + 114 * rgba[4 * i + 2] + 500) / 1000);
        }
        else
        {
            for (int i = 0; i < plane; i++)
            {
                destination[i] = rgba[4 * i];
                destination[plane + i] = rgba[4 * i + 1];
                destination[2 * plane + i] = rgba[4 * i + 2];
            }
        }
        return DecodeFailure.None;
    }

    /// <summary>The one-line reason for a failure, for error messages that then name the sample and the fix.</summary>
    public static string Describe(DecodeFailure failure, ImageHeader header, long maxPixels) => failure switch
    {
        DecodeFailure.NotAnImage => "is not a readable PNG, JPEG or WebP image",
        DecodeFailure.TooManyPixels =>
            $"declares {header.Width}x{header.Height} pixels, above the budget of {maxPixels} (max-image-pixels; a decompression bomb is refused before it is decoded)",
        _ => "decoded",
    };
}

/// <summary>The dimensions an image's header declares.</summary>
public readonly record struct ImageHeader(int Width, int Height);
