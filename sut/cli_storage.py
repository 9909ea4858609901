"""`python -m sut init-storage`: the upload bucket, private, with every public-access block on."""

from __future__ import annotations

from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from sut.settings import Settings
from sut.storage import client_config


async def init_storage(settings: Settings) -> int:
    session = get_session()
    async with session.create_client(
        "s3", region_name=settings.aws_region, endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id, aws_secret_access_key=settings.aws_secret_access_key,
        config=client_config(timeout=5),
    ) as s3:
        try:
            await s3.head_bucket(Bucket=settings.aws_s3_bucket)
            print(f"bucket {settings.aws_s3_bucket} exists")
        except ClientError:
            kwargs = {}
            if settings.aws_region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws_region}
            await s3.create_bucket(Bucket=settings.aws_s3_bucket, **kwargs)
            print(f"bucket {settings.aws_s3_bucket} created")
        await s3.put_public_access_block(
            Bucket=settings.aws_s3_bucket,
            PublicAccessBlockConfiguration={"BlockPublicAcls": True, "IgnorePublicAcls": True,
                                            "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
        )
    return 0
