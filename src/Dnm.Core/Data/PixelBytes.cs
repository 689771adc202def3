namespace Dnm.Core.Data;

/// <summary>Datasets keep pixels as bytes (a quarter of the memory of floats) and scale them on copy.</summary>
internal static class PixelBytes
{
    /// <summary>
    /// Writes b/255 for each byte. A true division, not a multiply by 1/255, so values are the correctly rounded
    /// quotients, exactly as torchvision's ToTensor produces them.
    /// </summary>
    public static void ToUnitFloats(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (destination.Length != source.Length)
            throw new ArgumentException($"Destination has {destination.Length} floats; an image has {source.Length}.", nameof(destination));
        for (int i = 0; i < source.Length; i++)
            destination[i] = source[i] / 255f;
    }
}
