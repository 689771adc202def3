using System.Buffers.Binary;
using System.Text;
using Dnm.Core.IO;

namespace Dnm.Core.Tests.IO;

public class NpyFileSpec
{
    [Fact]
    public void Should_write_numpy_1_0_header_padded_to_64_bytes_then_little_endian_rows()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("z.npy");
        float[] values = [1.5f, -2, 3, 0.25f, 5, 6];

        NpyFile.Write(path, values, rows: 3, cols: 2);

        var bytes = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, bytes[..8]);
        var headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        Assert.Equal(0, (10 + headerLength) % 64);
        var header = Encoding.ASCII.GetString(bytes, 10, headerLength);
        // Exactly what numpy.save writes for np.zeros((3, 2), '<f4').
        Assert.Equal("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", header.TrimEnd(' ', '\n'));
        Assert.EndsWith(" \n", header);
        Assert.Equal(10 + headerLength + 6 * 4, bytes.Length);
        var data = bytes.AsSpan(10 + headerLength);
        for (var i = 0; i < values.Length; i++)
            Assert.Equal(values[i], BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]));
    }

    [Fact]
    public void Should_refuse_values_that_do_not_fill_the_shape_and_leave_no_file()
    {
        using var dir = new ScratchDirectory();
        Assert.Throws<ArgumentException>(() => NpyFile.Write(dir.File("z.npy"), new float[5], 3, 2));
        Assert.Empty(dir.FileNames());
    }
}
