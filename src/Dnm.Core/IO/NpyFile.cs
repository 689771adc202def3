using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Dnm.Core.IO;

/// <summary>
/// A 2-D float32 array as a NumPy .npy file (format version 1.0): the magic <c>\x93NUMPY</c>, version bytes 1 and 0,
/// the header's length (u16, little-endian), the header (a Python dict literal, <c>{'descr': '&lt;f4', 'fortran_order':
/// False, 'shape': (rows, cols), }</c>, padded with spaces and ended by a newline so that the data starts on a 64-byte
/// boundary), then the values row by row, little-endian. <c>numpy.load</c> reads it.
/// </summary>
public static class NpyFile
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0];

    /// <summary>The bytes before the data of a <paramref name="rows"/> × <paramref name="cols"/> float32 array.</summary>
    public static byte[] Header(long rows, long cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        var dict = string.Create(CultureInfo.InvariantCulture, $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
        // Magic (8) + length (2) + dict + spaces + '\n' fills a whole number of 64-byte blocks.
        var unpadded = Magic.Length + 2 + dict.Length + 1;
        var headerLength = dict.Length + 1 + (64 - unpadded % 64) % 64;
        var bytes = new byte[Magic.Length + 2 + headerLength];
        Magic.CopyTo(bytes, 0);
        bytes[Magic.Length] = (byte)(headerLength & 0xFF);
        bytes[Magic.Length + 1] = (byte)(headerLength >> 8);
        var text = dict.PadRight(headerLength - 1) + "\n";
        Encoding.ASCII.GetBytes(text, bytes.AsSpan(Magic.Length + 2));
        return bytes;
    }

    /// <summary>Writes <paramref name="values"/> (row-major, <paramref name="rows"/> × <paramref name="cols"/>) atomically.</summary>
    public static void Write(string path, ReadOnlySpan<float> values, long rows, long cols)
    {
        if (values.Length != rows * cols)
            throw new ArgumentException($"Expected {rows} x {cols} = {rows * cols} values, got {values.Length}.", nameof(values));
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException(".npy files are written little-endian ('<f4')");
        using var file = new AtomicFileWriter(path);
        file.Stream.Write(Header(rows, cols));
        file.Stream.Write(MemoryMarshal.AsBytes(values));
        file.Commit();
    }
}
