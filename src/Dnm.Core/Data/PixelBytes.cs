using System.Numerics;

namespace Dnm.Core.Data;

/// <summary>Datasets keep pixels as bytes (a quarter of the memory of floats) and scale them on copy.</summary>
internal static class PixelBytes
{
    /// <summary>
    /// Writes b/255 for each byte. A true division, not a multiply by 1/255, so values are the correctly rounded
    /// quotients, exactly as torchvision's ToTensor produces them. Vector division is IEEE division too, so the vector
    /// loop (a quarter of the cost of a decode, scalar) gives the same floats as the scalar one.
    /// </summary>
    public static void ToUnitFloats(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (destination.Length != source.Length)
            throw new ArgumentException($"Destination has {destination.Length} floats; an image has {source.Length}.", nameof(destination));
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var scale = new Vector<float>(255f);
            int n = Vector<float>.Count;
            for (; i <= source.Length - Vector<byte>.Count; i += Vector<byte>.Count)
            {
                Vector.Widen(new Vector<byte>(source[i..]), out var low, out var high);
                Vector.Widen(low, out var a, out var b);
                Vector.Widen(high, out var c, out var d);
                (Vector.ConvertToSingle(a) / scale).CopyTo(destination[i..]);
                (Vector.ConvertToSingle(b) / scale).CopyTo(destination[(i + n)..]);
                (Vector.ConvertToSingle(c) / scale).CopyTo(destination[(i + 2 * n)..]);
                (Vector.ConvertToSingle(d) / scale).CopyTo(destination[(i + 3 * n)..]);
            }
        }
        for (; i < source.Length; i++)
            destination[i] = source[i] / 255f;
    }
}
