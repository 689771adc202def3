using Dnm.Core.Data;
using SkiaSharp;

namespace Dnm.Core.Explore;

/// <summary>Why an uploaded image was refused.</summary>
public enum IntakeFailure
{
    None,
    /// <summary>Not a PNG, JPEG or WebP image, or its data is broken.</summary>
    NotAnImage,
    /// <summary>Its header declares more pixels than the budget (a decompression bomb is refused before it is decoded).</summary>
    TooManyPixels,
    /// <summary>Colour for a grayscale model or grayscale for a colour one, and conversion was not asked for.</summary>
    WrongChannels,
}

/// <summary>The outcome of <see cref="ImageIntake.TryDecode"/>: the failure (None on success) and a message naming the problem and the fix.</summary>
public readonly record struct IntakeResult(IntakeFailure Failure, string Message)
{
    public bool Ok => Failure == IntakeFailure.None;
}

/// <summary>
/// Turns an uploaded encoded image into the model's input: C×H×W floats in [0,1] at the checkpoint's shape, the bytes
/// that <see cref="ImageDecoder"/> makes (so a PNG of a dataset image places exactly as the dataset image does), divided
/// by 255 as the datasets divide. A model trained on grayscale images gets grayscale images and a colour one colour
/// images; the other kind is refused unless <c>convert</c> is asked for (then luma, or gray copied to three planes).
/// </summary>
public static class ImageIntake
{
    public static IntakeResult TryDecode(ReadOnlySpan<byte> encoded, ImageShape shape, long maxPixels, bool convert, Span<float> destination)
    {
        if (destination.Length != shape.Pixels)
            throw new ArgumentException($"Destination has {destination.Length} floats; an image of {shape} has {shape.Pixels}.", nameof(destination));
        var header = Header(encoded);
        if (header is not { } h) return new IntakeResult(IntakeFailure.NotAnImage, "is not a readable PNG, JPEG or WebP image");
        // The budget first: a bomb is refused whatever else is wrong with it.
        if ((long)h.Width * h.Height > maxPixels)
            return new IntakeResult(IntakeFailure.TooManyPixels,
                $"declares {h.Width}x{h.Height} pixels, above the server's budget of {maxPixels} (--max-image-pixels); send a smaller image");
        if (!convert && h.Gray != (shape.Channels == 1))
        {
            var (has, wants) = h.Gray ? ("1 channel (grayscale)", $"{shape.Channels} (colour)") : ("colour channels", "1 channel (grayscale)");
            return new IntakeResult(IntakeFailure.WrongChannels,
                $"has {has} but the map was trained on images with {wants}; send such an image, or add convert=true to convert it");
        }
        var bytes = new byte[shape.Pixels];
        var failure = ImageDecoder.TryDecode(encoded, shape, bytes, maxPixels, out var decoded);
        if (failure != DecodeFailure.None)
            return new IntakeResult(failure == DecodeFailure.TooManyPixels ? IntakeFailure.TooManyPixels : IntakeFailure.NotAnImage,
                ImageDecoder.Describe(failure, decoded, maxPixels));
        PixelBytes.ToUnitFloats(bytes, destination);
        return new IntakeResult(IntakeFailure.None, "decoded");
    }

    /// <summary>The header's size and whether it declares a grayscale image (8-bit gray, as PNG and JPEG store it); null if it is no image.</summary>
    private static (int Width, int Height, bool Gray)? Header(ReadOnlySpan<byte> encoded)
    {
        if (encoded.IsEmpty) return null;
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data);
        if (codec is null || codec.Info.Width <= 0 || codec.Info.Height <= 0) return null;
        return (codec.Info.Width, codec.Info.Height, codec.Info.ColorType == SKColorType.Gray8);
    }
}
