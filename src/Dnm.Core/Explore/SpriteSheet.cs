using Dnm.Core.Data;
using Dnm.Core.Visual;
using SkiaSharp;

namespace Dnm.Core.Explore;

/// <summary>
/// Many small images in one PNG, tile i at column i % columns and row i / columns, no gaps: one request for a whole
/// lattice of prototypes or a whole page of thumbnails, drawn by the page from the tile's offset.
/// </summary>
public static class SpriteSheet
{
    /// <summary>Tiles <paramref name="count"/> images (C×H×W floats in [0,1], clamped; 1 channel grey, 3 RGB) into a PNG.</summary>
    public static byte[] Png(ReadOnlySpan<float> images, int count, ImageShape shape, int columns)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (shape.Channels is not (1 or 3))
            throw new ArgumentException($"Only 1- or 3-channel images can be drawn, not {shape}.", nameof(shape));
        if (images.Length != count * shape.Pixels)
            throw new ArgumentException($"Expected {count} images of {shape}, got {images.Length} floats.", nameof(images));
        columns = Math.Max(1, Math.Min(columns, count));
        var rows = Math.Max(1, (count + columns - 1) / columns);
        int width = columns * shape.Width, height = rows * shape.Height;
        var rgba = new byte[checked(width * height * 4)];
        var plane = shape.Height * shape.Width;
        for (var i = 0; i < count; i++)
        {
            var image = images.Slice(i * shape.Pixels, shape.Pixels);
            int left = i % columns * shape.Width, top = i / columns * shape.Height;
            for (var y = 0; y < shape.Height; y++)
            {
                for (var x = 0; x < shape.Width; x++)
                {
                    var p = y * shape.Width + x;
                    var r = ToByte(image[p]);
                    var (g, b) = shape.Channels == 3 ? (ToByte(image[plane + p]), ToByte(image[2 * plane + p])) : (r, r);
                    var o = ((top + y) * width + left + x) * 4;
                    (rgba[o], rgba[o + 1], rgba[o + 2], rgba[o + 3]) = (r, g, b, 255);
                }
            }
        }
        using var bitmap = PngFile.FromRgba(rgba, width, height);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode a {width}x{height} PNG.");
        return data.ToArray();
    }

    /// <summary>The dataset images at <paramref name="indices"/> as one sprite sheet.</summary>
    public static byte[] Png(IImageDataset data, ReadOnlySpan<int> indices, int columns)
    {
        var pixels = new float[indices.Length * data.Shape.Pixels];
        BatchBuffer.Pack(data, indices, pixels, new int[indices.Length]);
        return Png(pixels, indices.Length, data.Shape, columns);
    }

    // NaN draws black, as the map pictures draw it.
    private static byte ToByte(float v) => float.IsNaN(v) ? (byte)0 : (byte)MathF.Round(Math.Clamp(v, 0f, 1f) * 255f);
}
