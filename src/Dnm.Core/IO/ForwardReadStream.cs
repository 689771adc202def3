namespace Dnm.Core.IO;

/// <summary>
/// The base of a read-only, forward-only stream (an HTTP body, a pass-through that counts or hashes): everything but
/// reading is refused. A subclass implements <see cref="Read(Span{byte})"/>, and <see cref="Position"/> where it counts.
/// </summary>
public abstract class ForwardReadStream : Stream
{
    public abstract override int Read(Span<byte> buffer);

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
